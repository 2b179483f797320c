rule simulate:
    input:
        model=model_path,
    output:
        "results/maps/{entry}.mrc",
    params:
        resolution=resolution,
        voxel=SIM["voxel_size_a"],
    log:
        "logs/simulate/{entry}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse simulate {input.model} --resolution {params.resolution} "
        "--voxel-size {params.voxel} -o {output} 2> {log}"
