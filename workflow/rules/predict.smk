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


# Configured maps (config predict.maps): segment each on its own grid, and score it against its
# fitted model when one is given. GPU via the profile (slurm: gpu 1); CPU when there is none.
rule predict:
    input:
        map=predict_map_input,
        checkpoint=PREDICT["checkpoint"],
    output:
        helix="results/predict/{map_id}/helix_prob.mrc",
        sheet="results/predict/{map_id}/sheet_prob.mrc",
        labels="results/predict/{map_id}/labels.mrc",
        view="results/predict/{map_id}/view.cxc",
        summary="results/predict/{map_id}/summary.json",
    params:
        options=predict_args,
        memory=PREDICT["max_memory_gb"],
    threads: 2
    log:
        "logs/predict_map/{map_id}.log",
    benchmark:
        "benchmarks/predict/{map_id}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse predict {input.map} --checkpoint {input.checkpoint} {params.options} "
        "--max-memory-gb {params.memory} --threads {threads} -o results/predict/{wildcards.map_id} 2> {log}"


rule truth_labels:
    input:
        map=predict_map_input,
        model=predict_model_input,
    output:
        "results/evaluate_map/{map_id}/truth_labels.mrc",
    params:
        chains=label_chain_args,
    log:
        "logs/truth_labels/{map_id}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse label {input.model} {input.map} {params.chains} -o {output} 2> {log}"


rule evaluate_map:
    input:
        map=predict_map_input,
        model=predict_model_input,
        labels="results/predict/{map_id}/labels.mrc",
        truth="results/evaluate_map/{map_id}/truth_labels.mrc",
    output:
        scores="results/evaluate_map/{map_id}/scores.json",
        png="results/evaluate_map/{map_id}/slices.png",
    params:
        chain=evaluate_chain_args,
    log:
        "logs/evaluate_map/{map_id}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse evaluate --prediction {input.labels} --truth {input.truth} --density {input.map} "
        "--model {input.model} {params.chain} --id {wildcards.map_id} --json {output.scores} "
        "--png {output.png} > {log} 2>&1"


rule predict_maps:
    input:
        predict_targets,
