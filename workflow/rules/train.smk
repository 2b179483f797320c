rule train:
    input:
        datalist="results/dataset/datalist.json",
        settings=stage_config("train"),
    output:
        checkpoint="results/model/checkpoint.pt",
        card="results/model/model_card.json",
        metrics="results/model/metrics.jsonl",
        curve=report("results/model/training_curve.png", category="Model", caption="../report/training_curve.rst"),
    params:
        folder=folder_of("checkpoint"),
    threads: 2
    log:
        "logs/train/train.log",
    benchmark:
        "benchmarks/train.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse train --datalist {input.datalist:q} --config {input.settings:q} --threads {threads} "
        "-o {params.folder:q} 2> {log:q}"
