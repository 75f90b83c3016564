"""Write aligned faces into TFRecord shards (the original's dataset/dataset_sharding.py); = `facedancer shard`.

python dataset/dataset_sharding.py --data_dir ALIGNED --target_dir SHARDS --data_name faces --num_shards 1000
python dataset/dataset_sharding.py --verify "SHARDS/faces_train_*-of-*.records"
"""

import sys

from facedancer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["shard", *sys.argv[1:]]))
