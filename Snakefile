# cryosse: secondary-structure segmentation data and models for cryo-EM maps.
# Run: snakemake --workflow-profile workflow/profiles/default   (the Makefile does it for you)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/settings.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/prep.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/losses.smk"
include: "workflow/rules/bundle.smk"
include: "workflow/rules/interop.smk"


rule all:
    default_target: True
    input:
        "results/report/report.md",
        "results/dataset/manifest.tsv",
        "results/dataset/report/dataset_report.md",
        expand("results/entries/{entry}/labels.mrc", entry=ENTRIES),
        predict_targets,
