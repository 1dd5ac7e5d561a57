"""The CSV formats `visionfit predict` writes: name -> what its rows hold.

A module of its own, importing nothing, so the CLI can list the formats in --help
without importing the predictor (and with it torch).
"""

FORMATS = {
    "full": "image, label, confidence (+ true, top-k columns when present), error",
    "kaggle": "a competition submission: the input CSV's id column (its own name) and label, or one probability "
              "column per class with --probs, in input order, or the header and order of --sample-submission",
}
