# Experimental entries (config `emdb`): EMDB map + header and the fitted PDB model are fetched
# into the cache (`emdb.cache`, default resources/), the map is resampled, normalised and checked
# against the model into the entry's folder results/entries/EMD-NNNN/, then every accepted chain
# is cropped like a simulated one. A failed download or a rejected entry is recorded (fetch
# record, quality.json, manifest row), and the run goes on. Downloads run on the submitting host
# (localrules: compute nodes often have no network); the `downloads` resource caps concurrent
# fetch jobs (set it in the profile or with --resources).

localrules:
    query_emdb,
    fetch_entry,


checkpoint query_emdb:
    input:
        settings=stage_config("query"),
    output:
        QUERY_TABLE,
    log:
        "logs/query_emdb/query_emdb.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse query-emdb --config {input.settings:q} -o {output:q} 2> {log:q}"


rule fetch_entry:
    input:
        settings=stage_config("fetch"),
    output:
        ensure("results/fetch/{emdb}.json", non_empty=True),
    params:
        pdb=fetch_pdb_arg,
    resources:
        downloads=1,
    retries: 1
    log:
        "logs/fetch_entry/{emdb}.log",
    benchmark:
        "benchmarks/fetch_entry/{emdb}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse fetch entry {wildcards.emdb:q} {params.pdb:q} --record {output:q} "
        "--config {input.settings:q} 2> {log:q}"


rule prepare_map:
    input:
        record="results/fetch/{emdb}.json",
        settings=stage_config("experimental"),
    output:
        directory("results/entries/{emdb}"),
    params:
        chains=chains_arg,
    log:
        "logs/prepare_map/{emdb}.log",
    benchmark:
        "benchmarks/prepare_map/{emdb}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse prepare-map --record {input.record:q} --entry {wildcards.emdb:q} {params.chains:q} "
        "--config {input.settings:q} -o {output:q} 2> {log:q}"


rule crop_entry:
    input:
        prepared="results/entries/{emdb}",
        settings=stage_config("components"),
    output:
        directory("results/components/{emdb}"),
    log:
        "logs/crop_entry/{emdb}.log",
    benchmark:
        "benchmarks/crop_entry/{emdb}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse crop-entry {input.prepared:q} --config {input.settings:q} -o {output:q} 2> {log:q}"
