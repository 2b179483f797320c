# The loss comparison of Mu et al. 2024: the same data, seed and budget for each loss.
# Target: snakemake compare_losses


rule train_loss:
    input:
        datalist="results/dataset/datalist.json",
        settings=stage_config("losses"),
    output:
        checkpoint="results/losses/{loss}/checkpoint.pt",
        card="results/losses/{loss}/model_card.json",
        curve=report("results/losses/{loss}/training_curve.png", category="Loss comparison",
                     subcategory="training curves", caption="../report/training_curve.rst"),
    params:
        folder=folder_of("checkpoint"),
    threads: 2
    log:
        "logs/train_loss/{loss}.log",
    benchmark:
        "benchmarks/train_loss/{loss}.tsv"
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse train --datalist {input.datalist:q} --config {input.settings:q} --loss {wildcards.loss:q} "
        "--threads {threads} -o {params.folder:q} 2> {log:q}"


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
        "cryosse score --checkpoint {input.checkpoint:q} --datalist {input.datalist:q} --split test "
        "-o {output:q} 2> {log:q}"


rule compare_losses:
    input:
        expand("results/losses/{loss}/test_scores.json", loss=config["compare_losses"]["losses"]),
    output:
        table="results/losses/comparison.md",
        tsv="results/losses/comparison.tsv",
        chart=report("results/losses/comparison.png", category="Loss comparison",
                     caption="../report/loss_comparison.rst"),
    params:
        folder=folder_of("table"),
    log:
        "logs/compare_losses/compare_losses.log",
    conda:
        "../../envs/cryosse.yaml"
    shell:
        "cryosse compare-losses {input:q} -o {params.folder:q} > {log:q} 2>&1"
