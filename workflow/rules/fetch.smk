# Experimental entries (config `emdb`): EMDB map + header and the fitted PDB model are fetched
# into the cache (`emdb.cache`, default resources/), the map is resampled, normalised and checked
# against the model, then every accepted chain is cropped like a simulated one. A failed download
# or a rejected entry is recorded (fetch record, quality.json, manifest row), and the run goes on.
# Downloads run on the submitting host (localrules: compute nodes often have no network); the
# `downloads` resource caps concurrent fetch jobs (set it in the profile or with --resources).

localrules:
    query_emdb,
    fetch_entry,


checkpoint query_emdb:
    output:
        QUERY_TABLE,
    params:
        api=EMDB["api_url"],
        lo=QUERY["resolution_a"][0],
        hi=QUERY["resolution_a"][1],
        dates=query_date_args,
        max_mb=QUERY["max_map_mb"],
        limit=QUERY["limit"],
        timeout=EMDB["timeout_s"],
        retries=EMDB["retries"],
    log:
        "logs/query_emdb/query_emdb.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse query-emdb --api-url {params.api} --resolution {params.lo} {params.hi} {params.dates} "
        "--max-map-mb {params.max_mb} --limit {params.limit} --timeout {params.timeout} "
        "--retries {params.retries} -o {output} 2> {log}"


rule fetch_entry:
    output:
        ensure("results/fetch/{emdb}.json", non_empty=True),
    params:
        pdb=fetch_pdb_arg,
        cache=EMDB["cache"],
        emdb_url=EMDB["emdb_url"],
        pdb_url=EMDB["pdb_url"],
        timeout=EMDB["timeout_s"],
        retries=EMDB["retries"],
        per_host=EMDB["per_host"],
    resources:
        downloads=1,
    retries: 1
    log:
        "logs/fetch_entry/{emdb}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse fetch entry {wildcards.emdb} {params.pdb} --record {output} --cache {params.cache} "
        "--emdb-url {params.emdb_url} --pdb-url {params.pdb_url} --timeout {params.timeout} "
        "--retries {params.retries} --per-host {params.per_host} 2> {log}"


rule prepare_map:
    input:
        "results/fetch/{emdb}.json",
    output:
        directory("results/experimental/{emdb}"),
    params:
        chains=chains_arg,
        voxel=EXP["voxel_size_a"],
        normalise=EXP["normalise"],
        lo=EXP["resolution_a"][0],
        hi=EXP["resolution_a"][1],
        corr=EXP["min_correlation"],
        contour=EXP["min_atoms_in_contour"],
        coverage=EXP["min_coverage"],
        sse=EXP["min_sse_fraction"],
        zone=COMP["zone_radius_a"],
    log:
        "logs/prepare_map/{emdb}.log",
    benchmark:
        "benchmarks/prepare_map/{emdb}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse prepare-map --record {input} --entry {wildcards.emdb} {params.chains} "
        "--voxel-size {params.voxel} --normalise {params.normalise} --resolution-range {params.lo} {params.hi} "
        "--min-correlation {params.corr} --min-atoms-in-contour {params.contour} "
        "--min-coverage {params.coverage} --min-sse-fraction {params.sse} --zone-radius {params.zone} "
        "-o {output} 2> {log}"


rule crop_entry:
    input:
        "results/experimental/{emdb}",
    output:
        directory("results/components/{emdb}"),
    params:
        radius=config["labels"]["radius_a"],
        zone=COMP["zone_radius_a"],
        margin=COMP["margin_a"],
        multiple=COMP["multiple"],
        max_side=COMP["max_side"],
    log:
        "logs/crop_entry/{emdb}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse crop-entry {input} --radius {params.radius} --zone-radius {params.zone} "
        "--margin {params.margin} --multiple {params.multiple} --max-side {params.max_side} "
        "-o {output} 2> {log}"
