"""Swap faces in one image or a folder of images; = `facedancer swap` with --img_path.

    python video_swap/image_swap.py --facedancer_path FaceDancer_config_c_HQ.h5 --img_path photos/ \\
        --swap_source face.jpg --output swapped/
"""

import sys

from facedancer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["swap", *sys.argv[1:]]))
