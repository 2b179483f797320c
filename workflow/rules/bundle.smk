# The bundled model's recipe: whole-entry simulations of the train/val entries at several
# resolutions on the working grid, training with on-the-fly realism, and (when the real maps
# are present) its scores on them. `snakemake bundled_model`.


rule training_set:
    input:
        table=config["structures"],
        splits="results/dataset/splits.tsv",
    output:
        "results/bundle/data/datalist.json",
    params:
        resolutions=",".join(str(r) for r in BUNDLE["resolutions_a"]),
        voxel=BUNDLE["voxel_size_a"],
        radius=config["labels"]["radius_a"],
    log:
        "logs/bundle/training_set.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse training-set --structures {input.table} --splits {input.splits} "
        "--resolutions {params.resolutions} --voxel-size {params.voxel} --radius {params.radius} "
        "-o results/bundle/data 2> {log}"


rule bundle_train:
    input:
        "results/bundle/data/datalist.json",
    output:
        checkpoint="results/bundle/model/checkpoint.pt",
        card="results/bundle/model/model_card.json",
        curve="results/bundle/model/training_curve.png",
    params:
        b=BUNDLE,
        realism="--realism" if BUNDLE["realism"] else "",
    threads: 2
    log:
        "logs/bundle/train.log",
    benchmark:
        "benchmarks/bundle_train.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse train --datalist {input} --out-dir results/bundle/model --preset {params.b[preset]} "
        "--loss {params.b[loss]} --norm {params.b[norm]} {params.realism} "
        "--realism-ramp {params.b[realism_ramp]} --voxel-size {params.b[voxel_size_a]} "
        "--patch {params.b[patch]} --batch {params.b[batch]} --steps {params.b[steps]} "
        "--lr {params.b[lr]} --seed {params.b[seed]} --val-every {params.b[val_every]} "
        "--threads {threads} 2> {log}"


rule real_maps:
    input:
        "results/bundle/model/checkpoint.pt",
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
