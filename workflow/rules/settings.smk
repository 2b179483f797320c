# The settings of each stage, as the stage's command reads them (--config): one JSON file per stage
# under results/config/, rewritten (and its stage's jobs rerun) when the config changes.


rule stage_config:
    output:
        "results/config/{stage}.json",
    params:
        settings=lambda wc: json.dumps(SETTINGS[wc.stage], sort_keys=True),
    localrule: True
    log:
        "logs/stage_config/{stage}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "printf '%s\\n' {params.settings:q} > {output:q} 2> {log:q}"
