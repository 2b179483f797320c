rule crop:
    input:
        model=model_path,
        map="results/maps/{entry}.mrc",
        sse="results/sse/{entry}.tsv",
    output:
        directory("results/components/{entry}_{chain}"),
    params:
        pdb_id=pdb_id,
        resolution=resolution,
        radius=config["labels"]["radius_a"],
        zone=COMP["zone_radius_a"],
        margin=COMP["margin_a"],
        multiple=COMP["multiple"],
        max_side=COMP["max_side"],
    log:
        "logs/crop/{entry}_{chain}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse crop {input.map} {input.model} --chain {wildcards.chain} "
        "--id {wildcards.entry}_{wildcards.chain} --entry {wildcards.entry} --pdb-id {params.pdb_id} "
        "--resolution {params.resolution} --sse {input.sse} --radius {params.radius} "
        "--zone-radius {params.zone} --margin {params.margin} --multiple {params.multiple} "
        "--max-side {params.max_side} -o {output} 2> {log}"
