rule split:
    input:
        table=structures_table,
        sse=expand("results/sse/{entry}.tsv", entry=ENTRIES),
        prepared=all_prepared,
    output:
        "results/dataset/splits.tsv",
    params:
        sources=split_sources,
        identity=config["split"]["max_identity"],
        fractions=",".join(str(config["split"]["fractions"][s]) for s in ("train", "val", "test")),
        seed=config["split"]["seed"],
    log:
        "logs/split/split.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse split {params.sources} "
        "--identity {params.identity} --fractions {params.fractions} --seed {params.seed} "
        "-o {output} 2> {log}"


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
