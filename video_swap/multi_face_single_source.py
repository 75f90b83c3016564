"""Swap every face of a video with one source identity (the original's flags); = `facedancer swap`.

    python video_swap/multi_face_single_source.py --facedancer_path FaceDancer_config_c_HQ.h5 \\
        --arcface_path arcface_model/ArcFace-Res50.h5 --vid_path in.mp4 --swap_source face.jpg --output out.mp4
"""

import sys

from facedancer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["swap", *sys.argv[1:]]))
