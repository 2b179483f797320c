rule split:
    input:
        table=structures_table,
        sse=[LAYOUT.sse(e) for e in ENTRIES],
        prepared=all_prepared,
        settings=stage_config("split"),
    output:
        splits="results/dataset/splits.tsv",
        folds="results/dataset/folds.tsv",
    params:
        sources=split_sources,
    log:
        "logs/split/split.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse split {params.sources:q} --config {input.settings:q} --folds {output.folds:q} "
        "-o {output.splits:q} 2> {log:q}"


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
        "cryosse dataset {input.components:q} --splits {input.splits:q} "
        "--manifest {output.manifest:q} --datalist {output.datalist:q} 2> {log:q}"


rule dataset_report:
    input:
        manifest="results/dataset/manifest.tsv",
        splits="results/dataset/splits.tsv",
    output:
        report="results/dataset/report/dataset_report.md",
        balance=report("results/dataset/report/class_balance.png", category="Data set",
                       caption="../report/class_balance.rst"),
        resolution=report("results/dataset/report/resolution.png", category="Data set",
                          caption="../report/resolution.rst"),
        thumbnails=report("results/dataset/report/thumbnails.png", category="Data set",
                          caption="../report/thumbnails.rst"),
    params:
        folder=folder_of("report"),
    log:
        "logs/dataset_report/dataset_report.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse dataset-report --manifest {input.manifest:q} --splits {input.splits:q} "
        "-o {params.folder:q} 2> {log:q}"
