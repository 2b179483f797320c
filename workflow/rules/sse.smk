rule sse:
    input:
        model=model_path,
    output:
        "results/sse/{entry}.tsv",
    log:
        "logs/sse/{entry}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse sse {input.model} -o {output} 2> {log}"
