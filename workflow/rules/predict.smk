# The test split: each accepted test component predicted and scored (results/predict/test/{sample}/),
# then the report. Configured maps (config predict.maps): each segmented on its own grid and, with a
# fitted model, scored (results/predict/maps/{map_id}/). GPU via the profile (slurm: gpu 1); CPU
# when there is none.


rule predict_component:
    input:
        components=lambda wc: LAYOUT.components(wc.any_entry),
        checkpoint="results/model/checkpoint.pt",
    output:
        helix="results/predict/test/{any_entry}_{chain}/helix_prob.mrc",
        sheet="results/predict/test/{any_entry}_{chain}/sheet_prob.mrc",
        labels="results/predict/test/{any_entry}_{chain}/labels.mrc",
        preview=report("results/predict/test/{any_entry}_{chain}/preview.png", category="Test split",
                       subcategory="predictions", caption="../report/preview.rst"),
    params:
        density=lambda wc: f"{LAYOUT.component(f'{wc.any_entry}_{wc.chain}')}/density.mrc",
        folder=folder_of("labels"),
    log:
        "logs/predict/{any_entry}_{chain}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse predict {params.density:q} --checkpoint {input.checkpoint:q} -o {params.folder:q} 2> {log:q}"


rule evaluate_component:
    input:
        components=lambda wc: LAYOUT.components(wc.any_entry),
        labels="results/predict/test/{any_entry}_{chain}/labels.mrc",
        entry=lambda wc: LAYOUT.entry_inputs(wc.any_entry),
    output:
        scores="results/predict/test/{any_entry}_{chain}/scores.json",
        preview=report("results/predict/test/{any_entry}_{chain}/preview_vs_truth.png", category="Test split",
                       subcategory="true vs predicted", caption="../report/preview_vs_truth.rst"),
    params:
        component=lambda wc: LAYOUT.component(f"{wc.any_entry}_{wc.chain}"),
        model=lambda wc: LAYOUT.model(wc.any_entry),
        sse=lambda wc: LAYOUT.sse(wc.any_entry),
    log:
        "logs/evaluate/{any_entry}_{chain}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse evaluate --prediction {input.labels:q} --truth {params.component:q}/labels.mrc "
        "--density {params.component:q}/density.mrc --model {params.model:q} --chain {wildcards.chain:q} "
        "--sse {params.sse:q} --id {wildcards.any_entry:q}_{wildcards.chain:q} -o {output.scores:q} "
        "--preview {output.preview:q} > {log:q} 2>&1"


rule report:
    input:
        evals=test_evaluations,
        card="results/model/model_card.json",
    output:
        report="results/report/report.md",
        f1="results/report/f1.json",
        chart=report("results/report/f1.png", category="Test split", caption="../report/f1.rst"),
        slice=report("results/report/slice.png", category="Test split", caption="../report/slice.rst"),
    params:
        folder=folder_of("report"),
    log:
        "logs/report/report.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse report {input.evals:q} --model-card {input.card:q} -o {params.folder:q} 2> {log:q}"


rule predict:
    input:
        map=predict_map_input,
        checkpoint=PREDICT["checkpoint"],
        settings=stage_config("predict"),
    output:
        helix="results/predict/maps/{map_id}/helix_prob.mrc",
        sheet="results/predict/maps/{map_id}/sheet_prob.mrc",
        labels="results/predict/maps/{map_id}/labels.mrc",
        view="results/predict/maps/{map_id}/view.cxc",
        summary="results/predict/maps/{map_id}/summary.json",
        preview=report("results/predict/maps/{map_id}/preview.png", category="Configured maps",
                       subcategory="{map_id}", caption="../report/preview.rst"),
    params:
        options=predict_args,
        folder=folder_of("summary"),
    threads: 2
    log:
        "logs/predict_map/{map_id}.log",
    benchmark:
        "benchmarks/predict/{map_id}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse predict {input.map:q} --checkpoint {input.checkpoint:q} {params.options:q} "
        "--config {input.settings:q} --threads {threads} -o {params.folder:q} 2> {log:q}"


rule truth_labels:
    input:
        map=predict_map_input,
        model=predict_model_input,
    output:
        "results/predict/maps/{map_id}/truth_labels.mrc",
    params:
        chain=map_chain_args,
    log:
        "logs/truth_labels/{map_id}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse label {input.model:q} {input.map:q} {params.chain:q} -o {output:q} 2> {log:q}"


rule evaluate_map:
    input:
        map=predict_map_input,
        model=predict_model_input,
        labels="results/predict/maps/{map_id}/labels.mrc",
        truth="results/predict/maps/{map_id}/truth_labels.mrc",
    output:
        scores="results/predict/maps/{map_id}/scores.json",
        png=report("results/predict/maps/{map_id}/slices.png", category="Configured maps",
                   subcategory="{map_id}", caption="../report/slices.rst"),
        preview=report("results/predict/maps/{map_id}/preview_vs_truth.png", category="Configured maps",
                       subcategory="{map_id}", caption="../report/preview_vs_truth.rst"),
    params:
        chain=map_chain_args,
    log:
        "logs/evaluate_map/{map_id}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse evaluate --prediction {input.labels:q} --truth {input.truth:q} --density {input.map:q} "
        "--model {input.model:q} {params.chain:q} --id {wildcards.map_id:q} -o {output.scores:q} "
        "--png {output.png:q} --preview {output.preview:q} > {log:q} 2>&1"


rule predict_maps:
    input:
        predict_targets,
