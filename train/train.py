"""Train FaceDancer (the original's train/train.py flags); same as `facedancer train`.

    python train/train.py --data_dir "shards/faces_train_*-of-*.records" --eval_dir "shards/faces_val_*-of-*.records" \\
        --arcface_path arcface_model/ArcFace-Res50.h5 --perceptual_weights vgg16_notop.h5 --log_name myrun
"""

import sys

from facedancer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
