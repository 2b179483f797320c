rule train:
    input:
        datalist="results/dataset/datalist.json",
    output:
        checkpoint="results/model/checkpoint.pt",
        card="results/model/model_card.json",
        metrics="results/model/metrics.jsonl",
        curve="results/model/training_curve.png",
    params:
        preset=config["train"]["preset"],
        loss=config["train"]["loss"],
        voxel=config["train"]["voxel_size_a"],
        patch=config["train"]["patch"],
        batch=config["train"]["batch"],
        steps=config["train"]["steps"],
        lr=config["train"]["lr"],
        seed=config["train"]["seed"],
        val_every=config["train"]["val_every"],
        patience=config["train"]["patience"],
        max_minutes=config["train"]["max_minutes"],
    threads: 2
    log:
        "logs/train/train.log",
    benchmark:
        "benchmarks/train.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse train --datalist {input.datalist} --out-dir results/model --preset {params.preset} "
        "--loss {params.loss} --voxel-size {params.voxel} --patch {params.patch} --batch {params.batch} "
        "--steps {params.steps} --lr {params.lr} --seed {params.seed} --val-every {params.val_every} "
        "--patience {params.patience} --max-minutes {params.max_minutes} --threads {threads} 2> {log}"
