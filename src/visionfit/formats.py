"""The CSV formats `visionfit predict` writes: name -> what its rows hold.

A module of its own, importing nothing, so the CLI can list the formats in --help
without importing the predictor (and with it torch).
"""

FORMATS = {
    "full": "image, label, confidence (+ true, top-k columns when present), error",
    "kaggle": "exactly image,label, in input order: a competition submission",
}
