# The loss comparison of Mu et al. 2024: the same data, seed and budget for each loss.
# Target: snakemake compare_losses


rule train_loss:
    input:
        datalist="results/dataset/datalist.json",
    output:
        checkpoint="results/losses/{loss}/checkpoint.pt",
        card="results/losses/{loss}/model_card.json",
    params:
        preset=config["train"]["preset"],
        voxel=config["train"]["voxel_size_a"],
        patch=config["train"]["patch"],
        batch=config["train"]["batch"],
        steps=config["compare_losses"]["steps"],
        lr=config["train"]["lr"],
        seed=config["compare_losses"]["seed"],
        val_every=config["train"]["val_every"],
    threads: 2
    log:
        "logs/train_loss/{loss}.log",
    benchmark:
        "benchmarks/train_loss/{loss}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse train --datalist {input.datalist} --out-dir results/losses/{wildcards.loss} "
        "--preset {params.preset} --loss {wildcards.loss} --voxel-size {params.voxel} "
        "--patch {params.patch} --batch {params.batch} --steps {params.steps} --lr {params.lr} "
        "--seed {params.seed} --val-every {params.val_every} --threads {threads} 2> {log}"


rule score_loss:
    input:
        checkpoint="results/losses/{loss}/checkpoint.pt",
        datalist="results/dataset/datalist.json",
    output:
        "results/losses/{loss}/test_scores.json",
    log:
        "logs/score_loss/{loss}.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse score --checkpoint {input.checkpoint} --datalist {input.datalist} --split test "
        "-o {output} 2> {log}"


rule compare_losses:
    input:
        expand("results/losses/{loss}/test_scores.json", loss=config["compare_losses"]["losses"]),
    output:
        table="results/losses/comparison.md",
        tsv="results/losses/comparison.tsv",
        chart="results/losses/comparison.png",
    log:
        "logs/compare_losses/compare_losses.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse compare-losses {input} -o results/losses > {log} 2>&1"
