rule split:
    input:
        table=structures_table,
        sse=expand("results/sse/{entry}.tsv", entry=ENTRIES),
        prepared=all_prepared,
    output:
        splits="results/dataset/splits.tsv",
        folds="results/dataset/folds.tsv",
    params:
        sources=split_sources,
        identity=config["split"]["max_identity"],
        fractions=",".join(str(config["split"]["fractions"][s]) for s in ("train", "val", "test")),
        seed=config["split"]["seed"],
        kfold=config["split"]["kfold"],
    log:
        "logs/split/split.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse split {params.sources} "
        "--identity {params.identity} --fractions {params.fractions} --seed {params.seed} "
        "--kfold {params.kfold} --folds {output.folds} -o {output.splits} 2> {log}"


checkpoint dataset:
    input:
        components=all_components,
        splits="results/dataset/splits.tsv",
    output:
        manifest="results/dataset/manifest.tsv",
        datalist="results/dataset/datalist.json",
    log:
        "logs/dataset/dataset.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse dataset {input.components} --splits {input.splits} "
        "--manifest {output.manifest} --datalist {output.datalist} 2> {log}"


rule dataset_report:
    input:
        manifest="results/dataset/manifest.tsv",
        splits="results/dataset/splits.tsv",
    output:
        report="results/dataset/report/dataset_report.md",
        balance="results/dataset/report/class_balance.png",
        resolution="results/dataset/report/resolution.png",
        thumbnails="results/dataset/report/thumbnails.png",
    log:
        "logs/dataset_report/dataset_report.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse dataset-report --manifest {input.manifest} --splits {input.splits} "
        "-o results/dataset/report 2> {log}"
