rule label:
    input:
        model=model_path,
        map="results/maps/{entry}.mrc",
        sse="results/sse/{entry}.tsv",
    output:
        "results/labels/{entry}.mrc",
    params:
        radius=config["labels"]["radius_a"],
    log:
        "logs/label/{entry}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse label {input.model} {input.map} --sse {input.sse} --radius {params.radius} "
        "-o {output} 2> {log}"
