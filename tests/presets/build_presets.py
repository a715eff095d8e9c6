"""Tiny KerasHub presets (random weights, a locally made vocabulary) saved with
`save_to_preset`, so preset recipes run without the network.

    python tests/presets/build_presets.py OUT_DIR
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "."]


def tiny_bert(out):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB)
    pre = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB), num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16
    )
    clf = keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=2, preprocessor=pre)
    clf.save_to_preset(os.path.join(out, "tiny_bert"))


def main(out):
    os.makedirs(out, exist_ok=True)
    tiny_bert(out)
    with open(os.path.join(out, "READY"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main(sys.argv[1])
