# Simulated entries (the structures table): density simulated at the entry's resolution, DSSP, the
# whole-entry label map, and one component per chain, all in the entry's folder
# results/entries/{entry}/ and results/components/{entry}/ (the layout experimental entries share).


rule simulate:
    input:
        model=model_path,
        settings=stage_config("simulate"),
    output:
        "results/entries/{entry}/map.mrc",
    params:
        resolution=resolution,
    log:
        "logs/simulate/{entry}.log",
    benchmark:
        "benchmarks/simulate/{entry}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse simulate {input.model:q} --config {input.settings:q} --resolution {params.resolution:q} "
        "-o {output:q} 2> {log:q}"


rule sse:
    input:
        model=model_path,
        settings=stage_config("sse"),
    output:
        "results/entries/{entry}/sse.tsv",
    log:
        "logs/sse/{entry}.log",
    benchmark:
        "benchmarks/sse/{entry}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse sse {input.model:q} --config {input.settings:q} -o {output:q} 2> {log:q}"


rule label:
    input:
        model=model_path,
        map="results/entries/{entry}/map.mrc",
        sse="results/entries/{entry}/sse.tsv",
        settings=stage_config("labels"),
    output:
        "results/entries/{entry}/labels.mrc",
    log:
        "logs/label/{entry}.log",
    benchmark:
        "benchmarks/label/{entry}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse label {input.model:q} {input.map:q} --sse {input.sse:q} --config {input.settings:q} "
        "-o {output:q} 2> {log:q}"


rule crop:
    input:
        model=model_path,
        map="results/entries/{entry}/map.mrc",
        sse="results/entries/{entry}/sse.tsv",
        settings=stage_config("components"),
    output:
        directory("results/components/{entry}"),
    params:
        chains=lambda wc: ",".join(STRUCTURES[wc.entry].chains),
        pdb_id=lambda wc: STRUCTURES[wc.entry].pdb_id,
        resolution=resolution,
    log:
        "logs/crop/{entry}.log",
    benchmark:
        "benchmarks/crop/{entry}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse crop-entry --map {input.map:q} --model {input.model:q} --sse {input.sse:q} "
        "--chain {params.chains:q} --entry {wildcards.entry:q} --pdb-id {params.pdb_id:q} "
        "--resolution {params.resolution:q} --config {input.settings:q} -o {output:q} 2> {log:q}"
