"""The Hugging Face model folder: it round-trips through load_model, its card is the run's, the push calls the Hub."""
import json

import pytest
import torch

import visionfit
from visionfit.cli import main
from visionfit.errors import ConfigError, ModelError
from visionfit.infer.hub import export_hub_folder, push_to_hub


def test_the_folder_loads_as_the_same_model(bars_model, tmp_path):
    folder = export_hub_folder(bars_model, tmp_path / "hub")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    x = torch.rand(4, 1, 16, 16)
    original, loaded = visionfit.load_model(bars_model), visionfit.load_model(folder)
    assert torch.equal(original(x), loaded(x))
    assert loaded.visionfit_meta == original.visionfit_meta
    assert json.loads((folder / "config.json").read_text())["class_names"] == ["left", "middle", "right"]


def test_the_readme_is_the_runs_model_card_under_hub_front_matter(bars_model, tmp_path):
    folder = export_hub_folder(bars_model, tmp_path / "hub")
    readme = (folder / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: visionfit\npipeline_tag: image-classification\n")
    assert readme.split("---\n", 2)[2].lstrip("\n") == (bars_model.parent / "MODEL_CARD.md").read_text()
    again = export_hub_folder(folder, tmp_path / "hub2")  # a folder exported again keeps one front matter
    assert (again / "README.md").read_text() == readme


def test_a_model_file_without_its_run_gets_a_card_from_its_metadata(bars_model, tmp_path):
    alone = tmp_path / "alone" / "model.safetensors"
    alone.parent.mkdir()
    alone.write_bytes(bars_model.read_bytes())
    readme = (export_hub_folder(alone, tmp_path / "hub") / "README.md").read_text()
    assert "classes (3): left, middle, right" in readme and "no data counts" in readme


def test_a_folder_without_weights_or_an_occupied_folder_is_refused(bars_model, tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="has no model.safetensors"):
        visionfit.load_model(tmp_path / "half")
    with pytest.raises(ConfigError, match="--hub-folder .* is not empty"):
        export_hub_folder(bars_model, tmp_path / "half")


def test_push_uploads_the_folder_to_the_repository(bars_model, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)) or f"https://hf.co/{repo_id}")
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    main(["export", str(bars_model), "--hub-folder", str(tmp_path / "hub"), "--push-to-hub", "me/bars", "--private"])
    assert calls[0] == ("create", "me/bars", {"repo_type": "model", "private": True, "exist_ok": True})
    upload = calls[1][1]
    assert (upload["repo_id"], upload["folder_path"], upload["repo_type"]) == ("me/bars", str(tmp_path / "hub"), "model")
    assert "pushed to https://hf.co/me/bars" in capsys.readouterr().out


def test_push_without_a_token_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalTokenNotFoundError

    def no_token(self, repo_id, **kw):
        raise LocalTokenNotFoundError("Token is required")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_token)
    with pytest.raises(visionfit.VisionfitError, match="no Hugging Face token; set HF_TOKEN"):
        push_to_hub(tmp_path, "me/bars")
