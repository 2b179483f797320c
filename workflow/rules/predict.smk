rule predict_component:
    input:
        component="results/components/{sample}",
        checkpoint="results/model/checkpoint.pt",
    output:
        helix="results/predictions/{sample}/helix_prob.mrc",
        sheet="results/predictions/{sample}/sheet_prob.mrc",
        labels="results/predictions/{sample}/labels.mrc",
    log:
        "logs/predict/{sample}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse predict {input.component}/density.mrc --checkpoint {input.checkpoint} "
        "-o results/predictions/{wildcards.sample} 2> {log}"


rule evaluate_component:
    input:
        component="results/components/{entry}_{chain}",
        labels="results/predictions/{entry}_{chain}/labels.mrc",
        model=model_path,
        sse="results/sse/{entry}.tsv",
    output:
        "results/evaluation/{entry}_{chain}.json",
    log:
        "logs/evaluate/{entry}_{chain}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse evaluate --prediction {input.labels} --truth {input.component}/labels.mrc "
        "--density {input.component}/density.mrc --model {input.model} --chain {wildcards.chain} "
        "--sse {input.sse} --id {wildcards.entry}_{wildcards.chain} --json {output} > {log} 2>&1"


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
