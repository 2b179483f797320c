rule sse:
    input:
        model=model_path,
    output:
        "results/sse/{entry}.tsv",
    params:
        engine=config["sse"]["engine"],
        helix=",".join(config["sse"]["classes"]["helix"]),
        sheet=",".join(config["sse"]["classes"]["sheet"]),
    log:
        "logs/sse/{entry}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse sse {input.model} --engine {params.engine} --helix={params.helix} "
        "--sheet={params.sheet} -o {output} 2> {log}"
