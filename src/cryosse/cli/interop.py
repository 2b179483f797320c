"""Commands that hand the data set to other tools: export-nnunet."""
from __future__ import annotations

from .options import add_command, output_option, say


def cmd_export_nnunet(a) -> None:
    from ..interop.nnunet import dataset_folder, export_nnunet

    meta = export_nnunet(a.datalist, a.dataset_id, a.output, merge_other=a.merge_other)
    say(f"{dataset_folder(a.output, a.dataset_id)}: {meta['numTraining']} training cases, labels "
        + ", ".join(f"{k} {v}" for k, v in meta["labels"].items()))


def register(sub) -> None:
    s = add_command(sub, "export-nnunet", "the data set as nnU-Net v2 raw data (NIfTI, splits_final.json)",
                    "Write OUTPUT/DatasetNNN_cryosse/ for nnU-Net v2: imagesTr/ and labelsTr/ (the datalist's "
                    "training and validation items), imagesTs/ (the test split, images only), dataset.json "
                    "and splits_final.json from the data set's leakage-free folds (or its train/val split). "
                    "NIfTI spacing is the map's voxel size in Å. Needs nibabel (pip install 'cryosse[monai]'). Then, with nnUNet_raw=OUTPUT: "
                    "nnUNetv2_plan_and_preprocess -d NNN; nnUNetv2_train NNN 3d_fullres FOLD.",
                    "export-nnunet --datalist results/dataset/datalist.json --dataset-id 501 -o nnUNet_raw",
                    cmd_export_nnunet)
    s.add_argument("--datalist", required=True, help="datalist.json from 'cryosse dataset'")
    s.add_argument("--dataset-id", required=True, type=int, help="nnU-Net dataset id (1-999)")
    s.add_argument("--merge-other", action="store_true",
                   help="label 3 (other protein) becomes background: the 3 classes cryosse's network learns")
    output_option(s, "nnU-Net raw folder (nnUNet_raw)")
