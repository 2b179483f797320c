# The bundled model's recipe: whole-entry simulations of the train/val entries at several
# resolutions on the working grid, training with on-the-fly realism, and (when the real maps
# are present) its scores on them. `snakemake bundled_model`.


rule training_set:
    input:
        unpack(training_set_input),
    output:
        "results/bundle/data/datalist.json",
    params:
        extra=lambda wc, input: f"--extra-structures {input.extra} --max-identity {config['split']['max_identity']}"
        if "extra" in input.keys() else "",
        resolutions=",".join(str(r) for r in BUNDLE["resolutions_a"]),
        voxel=BUNDLE["voxel_size_a"],
        radius=config["labels"]["radius_a"],
        train_splits=",".join(BUNDLE["train_splits"]),
    log:
        "logs/bundle/training_set.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse training-set --structures {input.table} --splits {input.splits} "
        "--resolutions {params.resolutions} --voxel-size {params.voxel} --radius {params.radius} "
        "--train-splits {params.train_splits} {params.extra} -o results/bundle/data 2> {log}"


rule bundle_train:
    input:
        "results/bundle/data/datalist.json",
    output:
        checkpoint="results/bundle/model/seed{seed}/checkpoint.pt",
        card="results/bundle/model/seed{seed}/model_card.json",
        curve="results/bundle/model/seed{seed}/training_curve.png",
    wildcard_constraints:
        seed=r"\d+",
    params:
        b=BUNDLE,
        realism="--realism" if BUNDLE["realism"] else "",
    threads: 2 if len(BUNDLE["seeds"]) == 1 else 1
    log:
        "logs/bundle/train_seed{seed}.log",
    benchmark:
        "benchmarks/bundle_train_seed{seed}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse train --datalist {input} --out-dir results/bundle/model/seed{wildcards.seed} "
        "--preset {params.b[preset]} "
        "--loss {params.b[loss]} --norm {params.b[norm]} {params.realism} "
        "--realism-ramp {params.b[realism_ramp]} --voxel-size {params.b[voxel_size_a]} "
        "--patch {params.b[patch]} --batch {params.b[batch]} --steps {params.b[steps]} "
        "--lr {params.b[lr]} --seed {wildcards.seed} --val-every {params.b[val_every]} "
        "--threads {threads} 2> {log}"


rule bundle_ensemble:
    input:
        expand("results/bundle/model/seed{seed}/checkpoint.pt", seed=BUNDLE["seeds"]),
    output:
        "results/bundle/model/ensemble.pt",
    log:
        "logs/bundle/ensemble.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse ensemble {input} -o {output} 2> {log}"


rule real_maps:
    input:
        bundle_checkpoint(),
    output:
        table="results/bundle/real_maps/real_maps.md",
        scores="results/bundle/real_maps/real_maps.json",
    params:
        data=config["real_maps"],
    threads: 2
    log:
        "logs/bundle/real_maps.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse real-maps --checkpoint {input} --data {params.data} -o results/bundle/real_maps 2> {log}"


rule bundle_export:
    input:
        unpack(bundle_export_input),
    output:
        model="results/bundle/cryosse-sse-v1.pt",
        card="results/bundle/cryosse-sse-v1.json",
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
        "echo {params.recipe:q} > {output.recipe} && "
        "cryosse export-model {input.checkpoint} {params.real_maps} --recipe {output.recipe} "
        "-o {output.model} 2> {log}"


rule bundled_model:
    input:
        bundle_targets,
