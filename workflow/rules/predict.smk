rule predict_component:
    input:
        component=component_input,
        checkpoint="results/model/checkpoint.pt",
    output:
        helix="results/predictions/{sample}/helix_prob.mrc",
        sheet="results/predictions/{sample}/sheet_prob.mrc",
        labels="results/predictions/{sample}/labels.mrc",
    log:
        "logs/predict/{sample}.log",
    conda:
        "../../envs/cryosse.yaml"
    params:
        component=component_dir,
    shell:
        "cryosse predict {params.component}/density.mrc --checkpoint {input.checkpoint} "
        "-o results/predictions/{wildcards.sample} 2> {log}"


rule evaluate_component:
    input:
        component=component_input,
        labels="results/predictions/{entry}_{chain}/labels.mrc",
        model=model_input,
        sse=sse_input,
    output:
        "results/evaluation/{entry}_{chain}.json",
    params:
        component=component_dir,
        model=model_file,
        sse=sse_file,
    log:
        "logs/evaluate/{entry}_{chain}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse evaluate --prediction {input.labels} --truth {params.component}/labels.mrc "
        "--density {params.component}/density.mrc --model {params.model} --chain {wildcards.chain} "
        "--sse {params.sse} --id {wildcards.entry}_{wildcards.chain} --json {output} > {log} 2>&1"


rule report:
    input:
        evals=test_evaluations,
        card="results/model/model_card.json",
    output:
        report="results/report/report.md",
        f1="results/report/f1.json",
        chart="results/report/f1.png",
    log:
        "logs/report/report.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse report {input.evals} --model-card {input.card} -o results/report 2> {log}"
