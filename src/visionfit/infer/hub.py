"""A model folder in Hugging Face's layout, and pushing it to the Hub.

    visionfit.export_hub_folder("runs/exp/best.safetensors", "hub/digits")   # config.json, model.safetensors, README.md
    model = visionfit.load_model("hub/digits")                               # the same model, from the folder
    push_to_hub("hub/digits", "me/digits")                                   # needs huggingface_hub and a token

config.json is the model file's metadata (architecture, arguments, class names,
preprocessing, metrics), read back as data and checked field by field like a model file's;
model.safetensors holds the weights; README.md is the run's MODEL_CARD.md (or a short card
from the metadata) under the Hub's front matter.
"""
import json
import os
from pathlib import Path

import safetensors.torch

from ..checkpoints import FOLDER_CONFIG, FOLDER_WEIGHTS, load_model, unwrap
from ..errors import ConfigError, OutputError
from ..files import atomic_path, require_writable_folder, write_text_atomic, writing
from ..train.run_dir import MODEL_CARD

README = "README.md"
HUB_TAGS = ("image-classification", "visionfit")


def export_hub_folder(model: str | Path, folder: str | Path, trust_code: bool = False) -> Path:
    """Write `model` (a model file or model folder) as `folder`/config.json, model.safetensors and README.md.

    The folder must be new or empty: nothing in it is replaced.
    """
    folder = Path(folder)
    require_writable_folder("--hub-folder", folder)
    if folder.is_dir() and any(folder.iterdir()):  # so no file, the model's own included, is replaced
        raise ConfigError(f"--hub-folder {folder} is not empty; give a new or empty folder")
    net = load_model(model, "cpu", trust_code)
    meta = dict(net.visionfit_meta)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / FOLDER_WEIGHTS) as tmp:
        # "format": "pt" is what the Hub's safetensors readers look for; the description is config.json.
        safetensors.torch.save_model(unwrap(net), str(tmp), metadata={"format": "pt"})
    write_text_atomic(folder / FOLDER_CONFIG, json.dumps(meta, indent=2))
    write_text_atomic(folder / README, hub_readme(meta, _run_card(Path(model))))
    return folder


def _run_card(model: Path) -> str | None:
    """The MODEL_CARD.md of the run a model file belongs to (it sits beside it), or None."""
    card = (model if model.is_dir() else model.parent) / (README if model.is_dir() else MODEL_CARD)
    return card.read_text(encoding="utf-8", errors="replace") if card.is_file() else None


def hub_readme(meta: dict, card: str | None) -> str:
    """The Hub's YAML front matter (library, task, tags), then the model card."""
    tags = [*HUB_TAGS, str(meta["architecture"])]
    front = "\n".join(["---", "library_name: visionfit", "pipeline_tag: image-classification", "tags:",
                       *(f"- {json.dumps(tag)}" for tag in tags), "---", ""])
    if card is not None and card.startswith("---"):  # a hub folder's README exported again: one front matter
        card = card.split("---", 2)[2].lstrip("\n")
    return front + "\n" + (card or _card_from_meta(meta))


def _card_from_meta(meta: dict) -> str:
    """A short card for a model file without its run's MODEL_CARD.md: what the file itself says."""
    metrics = meta.get("metrics") or {}
    scores = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items()
                       if key in ("loss", "acc", "val_loss", "val_acc") and isinstance(value, (int, float)))
    return (f"# {meta['architecture']}\n\nAn image classifier trained by visionfit "
            f"{meta.get('visionfit_version', '')} on {meta.get('dataset', 'unrecorded data')}.\n\n"
            f"- classes ({len(meta['class_names'])}): {', '.join(map(str, meta['class_names']))}\n"
            f"- input: {meta['in_channels']} x {meta['input_size']} x {meta['input_size']}, "
            f"mean {meta['mean']}, std {meta['std']}\n"
            + (f"- metrics at epoch {metrics.get('epoch')}: {scores}\n" if scores else "")
            + "\nLoad it with `visionfit.load_model(folder)`. The run's MODEL_CARD.md was not beside the model file, "
              "so this card has no data counts or confusion matrix.\n")


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload `folder` to the Hub model repository `repo_id` (made if missing); returns its URL.

    The token is huggingface_hub's usual one: $HF_TOKEN, else the one `hf auth login` saved.
    """
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalTokenNotFoundError
    except ImportError:
        raise ConfigError("--push-to-hub needs huggingface_hub: pip install 'visionfit[hub]'") from None
    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=os.fspath(folder), repo_type="model",
                          commit_message=f"visionfit export of {Path(folder).name}")
    except LocalTokenNotFoundError:
        raise OutputError(f"--push-to-hub {repo_id}: no Hugging Face token; set HF_TOKEN or run `hf auth login`") from None
    except HFValidationError as error:
        raise ConfigError(f"--push-to-hub {repo_id}: not a repository id ({error}); give owner/name") from None
    except (HfHubHTTPError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OutputError(f"--push-to-hub {repo_id}: the upload failed ({first}); the folder {folder} is intact") from None
    return str(url)
