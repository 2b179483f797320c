# snakemake export_nnunet: the data set as nnU-Net v2 raw data (docs/interop.md), into
# results/nnunet_raw/DatasetNNN_cryosse/ (NNN: config nnunet.dataset_id).
NNUNET = config["nnunet"]
NNUNET_DATASET = f"results/nnunet_raw/Dataset{NNUNET['dataset_id']:03d}_cryosse"


rule export_nnunet:
    input:
        "results/dataset/datalist.json",
    output:
        directory(NNUNET_DATASET),
    params:
        raw=lambda wildcards, output: os.path.dirname(output[0]),
        dataset_id=NNUNET["dataset_id"],
        merge=["--merge-other"] if NNUNET["merge_other"] else [],
    log:
        "logs/export_nnunet/export_nnunet.log",
    conda:
        "../../envs/interop.yaml"
    shell:
        "cryosse export-nnunet --datalist {input:q} --dataset-id {params.dataset_id:q} "
        "{params.merge:q} -o {params.raw:q} 2> {log:q}"
