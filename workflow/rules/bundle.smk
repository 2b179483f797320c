# The bundled model's recipe: whole-entry simulations of the train/val entries at several
# resolutions on the working grid, training with on-the-fly realism, optionally a fine-tune of
# every member with its own realism (bundle.finetune, from the runs or from a shipped
# ensemble's members; several fine-tune seeds per member are averaged, cryosse soup),
# calibration, and (when the real maps are present) its scores on them. `snakemake bundled_model`.


rule training_set:
    input:
        unpack(training_set_input),
    output:
        "results/bundle/data/datalist.json",
    params:
        extra=lambda wc, input: ["--extra-structures", input.extra] if "extra" in input.keys() else [],
        folder=folder_of(0),
    log:
        "logs/bundle/training_set.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse training-set --structures {input.table:q} --splits {input.splits:q} "
        "--config {input.settings:q} {params.extra:q} -o {params.folder:q} 2> {log:q}"


rule bundle_train:
    input:
        datalist="results/bundle/data/datalist.json",
        settings=stage_config("bundle_train"),
    output:
        checkpoint="results/bundle/model/seed{seed}/checkpoint.pt",
        card="results/bundle/model/seed{seed}/model_card.json",
        curve=report("results/bundle/model/seed{seed}/training_curve.png", category="Bundled model",
                     subcategory="training curves", caption="../report/training_curve.rst"),
    wildcard_constraints:
        seed=r"\d+",
    params:
        folder=folder_of("checkpoint"),
    threads: 2 if len(BUNDLE["seeds"]) == 1 else 1
    log:
        "logs/bundle/train_seed{seed}.log",
    benchmark:
        "benchmarks/bundle_train_seed{seed}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse train --datalist {input.datalist:q} --config {input.settings:q} --seed {wildcards.seed:q} "
        "--threads {threads} -o {params.folder:q} 2> {log:q}"


rule bundle_finetune:
    input:
        datalist="results/bundle/data/datalist.json",
        init=finetune_init,
        settings=stage_config("bundle_finetune"),
    output:
        checkpoint="results/bundle/model/seed{seed}/finetune{offset}/checkpoint.pt",
        card="results/bundle/model/seed{seed}/finetune{offset}/model_card.json",
        curve=report("results/bundle/model/seed{seed}/finetune{offset}/training_curve.png", category="Bundled model",
                     subcategory="training curves", caption="../report/training_curve.rst"),
    wildcard_constraints:
        seed=r"\d+",
        offset=r"\d+",
    params:
        folder=folder_of("checkpoint"),
        member=finetune_member,
        seed=lambda wc: int(wc.seed) + int(wc.offset),
    threads: 2 if len(BUNDLE["seeds"]) * len(FINETUNE["seed_offsets"]) == 1 else 1
    log:
        "logs/bundle/finetune_seed{seed}_{offset}.log",
    benchmark:
        "benchmarks/bundle_finetune_seed{seed}_{offset}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse train --datalist {input.datalist:q} --config {input.settings:q} --seed {params.seed:q} "
        "--init {input.init:q} {params.member:q} --threads {threads} -o {params.folder:q} 2> {log:q}"


rule bundle_soup:
    input:
        finetunes=lambda wc: finetunes(wc.seed),
        datalist="results/bundle/data/datalist.json",
    output:
        "results/bundle/model/seed{seed}/soup.pt",
    wildcard_constraints:
        seed=r"\d+",
    threads: 1 if len(BUNDLE["seeds"]) > 1 else 2
    log:
        "logs/bundle/soup_seed{seed}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse soup {input.finetunes:q} --datalist {input.datalist:q} --threads {threads} -o {output:q} 2> {log:q}"


rule bundle_ensemble:
    input:
        [bundle_member(seed) for seed in BUNDLE["seeds"]],
    output:
        "results/bundle/model/ensemble.pt",
    log:
        "logs/bundle/ensemble.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse ensemble {input:q} -o {output:q} 2> {log:q}"


rule bundle_calibrate:
    input:
        checkpoint=bundle_trained(),
        cases=config["real_maps"] or [],
    output:
        "results/bundle/model/calibrated.pt",
    threads: 2
    log:
        "logs/bundle/calibrate.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse calibrate --checkpoint {input.checkpoint:q} --cases {input.cases:q} -o {output:q} 2> {log:q}"


rule real_maps:
    input:
        checkpoint=bundle_checkpoint(),
        cases=config["real_maps"] or [],
    output:
        table="results/bundle/real_maps/real_maps.md",
        scores="results/bundle/real_maps/real_maps.json",
        figures=[report(f"results/bundle/real_maps/{name}.png", category="Bundled model",
                        subcategory="real maps", caption="../report/real_map.rst") for name in real_map_names()],
    params:
        folder=folder_of("table"),
    threads: 2
    log:
        "logs/bundle/real_maps.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse real-maps --checkpoint {input.checkpoint:q} --cases {input.cases:q} -o {params.folder:q} "
        "2> {log:q}"


rule bundle_export:
    input:
        unpack(bundle_export_input),
    output:
        model=f"results/bundle/{BUNDLED_NAME}.pt",
        card=f"results/bundle/{BUNDLED_NAME}.json",
        recipe="results/bundle/recipe.json",
    params:
        real_maps=real_maps_arg,
        recipe=json.dumps({"target": "snakemake bundled_model", "bundle": BUNDLE,
                           "structures": config["structures"], "split": config["split"]}),
    log:
        "logs/bundle/export.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "printf '%s\\n' {params.recipe:q} > {output.recipe:q} && "
        "cryosse export-model {input.checkpoint:q} {params.real_maps:q} --recipe {output.recipe:q} "
        "-o {output.model:q} 2> {log:q}"


rule bundled_model:
    input:
        bundle_targets,
