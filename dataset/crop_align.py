"""Detect and align a face dataset (the original's dataset/crop_align.py); same as `facedancer align`.

python dataset/crop_align.py --data_dir DATASET --target_dir ALIGNED --im_size 256 --min_size 128
"""

import sys

from facedancer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["align", *sys.argv[1:]]))
