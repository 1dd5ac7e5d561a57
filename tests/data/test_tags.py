"""Multi-label CSVs: a tags column or one 0/1 column per class; the rule that tells them from single-label files."""
import numpy as np
import pytest

from visionfit.data.check import check_data
from visionfit.data.samples import DatasetSplits, Samples, strata
from visionfit.data.sources import load_source, relabel
from visionfit.data.validation import refuse_single_class, split_train_val
from visionfit.data.table import EMPTY_LABEL, load_csv
from visionfit.errors import ConfigError, DataError


def test_a_tags_column_holds_space_separated_classes(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,tags\nimgs/a.png,dog cat\nimgs/b.png,bird\nimgs/c.png,  cat  \n")
    names, samples = load_csv(csv)
    assert names == ["bird", "cat", "dog"] and samples.multi_label
    np.testing.assert_array_equal(samples.labels, [[0, 1, 1], [1, 0, 0], [0, 1, 0]])


def test_numeric_tags_sort_as_numbers_and_name_one_class_however_written(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "id,Labels\nimgs/a.png,10 2\nimgs/b.png,02 3.0\n")  # Human Protein style
    names, samples = load_csv(csv)
    assert names == ["2", "3", "10"]
    np.testing.assert_array_equal(samples.labels, [[1, 0, 1], [1, 1, 0]])


def test_zero_one_columns_are_classes_in_header_order(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,dog,cat,bird\nimgs/a.png,1,1,0\nimgs/b.png,0,0,1\nimgs/c.png,0,0,0\n")
    names, samples = load_csv(csv)
    assert names == ["dog", "cat", "bird"]
    np.testing.assert_array_equal(samples.labels, [[1, 1, 0], [0, 0, 1], [0, 0, 0]])  # no class at all is a label too


def test_a_label_column_with_spaces_stays_one_class_per_row(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,label\nimgs/a.png,sea lion\nimgs/b.png,seal\n")
    names, samples = load_csv(csv)
    assert names == ["sea lion", "seal"] and not samples.multi_label
    np.testing.assert_array_equal(samples.labels, [0, 1])


def test_the_multi_label_flag_reads_any_label_column_as_tags_and_its_negation_reads_tags_as_one_class(
        tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,label\nimgs/a.png,sea lion\nimgs/b.png,seal\n")
    names, samples = load_csv(csv, multi_label=True)
    assert names == ["lion", "sea", "seal"]
    np.testing.assert_array_equal(samples.labels, [[1, 1, 0], [0, 0, 1]])
    tags = write_csv(tmp_path / "u.csv", "image,tags\nimgs/a.png,sea lion\nimgs/b.png,seal\n")
    assert load_csv(tags, multi_label=False)[0] == ["sea lion", "seal"]


def test_columns_that_are_not_all_zero_or_one_are_still_refused(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,weight,height\nimgs/a.png,0,1\nimgs/b.png,2,0\n")
    with pytest.raises(DataError, match=r"no label column .*one column of 0/1 per class"):
        load_csv(csv)
    single = write_csv(tmp_path / "u.csv", "image,dog,cat\nimgs/a.png,0,1\n")
    with pytest.raises(DataError, match="no label column"):
        load_csv(single, multi_label=False)


def test_labels_of_new_data_map_onto_the_model_classes(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,tags\nimgs/a.png,cat\nimgs/b.png,dog cat\n")
    np.testing.assert_array_equal(load_csv(csv, class_names=["dog", "cat", "owl"])[1].labels, [[0, 1, 0], [1, 1, 0]])
    with pytest.raises(DataError, match=r"row 3: tag 'dog' is not one of the training classes"):
        load_csv(csv, class_names=["cat", "owl"])
    columns = write_csv(tmp_path / "u.csv", "image,cat,dog\nimgs/a.png,1,0\n")
    np.testing.assert_array_equal(load_csv(columns, class_names=["dog", "cat"])[1].labels, [[0, 1]])
    with pytest.raises(DataError, match=r"0/1 columns \(cat, dog\) are not the model's classes"):
        load_csv(columns, class_names=["dog", "cat", "owl"])


def test_empty_tag_cells_are_bad_rows(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,tags\nimgs/a.png,cat\nimgs/b.png,\nimgs/c.png,dog\n")
    with pytest.raises(DataError, match=r"1 row\(s\) have an empty 'tags' cell, e.g. row 3"):
        load_csv(csv)
    bad_rows = []
    names, samples = load_csv(csv, bad_rows=bad_rows)
    assert bad_rows == [(EMPTY_LABEL, "t.csv row 3")] and len(samples) == 2


def test_multi_label_flag_on_a_folder_is_refused(tmp_path, class_folders):
    with pytest.raises(ConfigError, match="--multi-label needs a CSV"):
        load_source(str(class_folders(tmp_path / "data", {"a": 2, "b": 2})), multi_label=True)


def test_strata_are_the_rarest_class_and_the_split_reaches_every_class():
    labels = np.array([[1, 1, 0]] * 8 + [[1, 0, 0]] * 8 + [[0, 0, 1]] * 3 + [[0, 0, 0]] * 2)
    np.testing.assert_array_equal(strata(labels), [1] * 8 + [0] * 8 + [2] * 3 + [3] * 2)
    samples = Samples(labels=labels, images=np.zeros((len(labels), 2, 2), dtype=np.uint8))
    train, val = split_train_val(samples, 0.25, seed=0)
    assert val.labels.any(axis=0).all() and train.labels.any(axis=0).all()
    assert len(val) == 2 + 2 + 1 + 1  # a quarter of each stratum, rounded, at least one


def test_relabel_moves_multi_label_columns_to_the_model_order():
    samples = Samples(labels=[[1, 0], [0, 1]], images=np.zeros((2, 2, 2), dtype=np.uint8))
    np.testing.assert_array_equal(relabel(samples, ["b", "a"], ["a", "c", "b"]).labels, [[0, 0, 1], [1, 0, 0]])


def test_check_data_describes_a_multi_label_csv(tmp_path, png, write_csv):
    tags = ["cat", "cat dog", "dog", "cat dog", "owl cat", "dog", "cat", "dog owl", "cat", "dog"]
    lines = ["image,tags"]
    for i, cell in enumerate(tags):
        png(tmp_path / "imgs" / f"{i}.png", np.full((8, 8), 20 * i, dtype=np.uint8))
        lines.append(f"imgs/{i}.png,{cell}")
    (tmp_path / "imgs" / "10.png").write_bytes((tmp_path / "imgs" / "0.png").read_bytes())
    lines.append("imgs/10.png,dog")  # the same image as row 2, tagged otherwise
    report = check_data(str(write_csv(tmp_path / "t.csv", "\n".join(lines) + "\n")))
    assert "3 classes (multi-label: 1.36 tags per training image" in report.title
    found = {finding.check: finding for finding in report.findings}
    assert found["classes"].summary == "3 classes, 1 to 5 training images each"
    assert found["identical images, different labels"].items == [
        f"{tmp_path / 'imgs' / '0.png'} is 'cat', {tmp_path / 'imgs' / '10.png'} is 'dog'"]


def test_tags_that_never_differ_teach_nothing_and_are_refused():
    images = np.zeros((3, 2, 2), dtype=np.uint8)
    same = DatasetSplits("same", ["cat", "dog"], Samples(labels=[[1, 0]] * 3, images=images))
    with pytest.raises(DataError, match=r"every training image of same has the same tags \('cat'\)"):
        refuse_single_class(same)
    refuse_single_class(DatasetSplits("fine", ["cat", "dog"], Samples(labels=[[1, 0], [1, 1], [1, 0]], images=images)))


def test_a_target_column_that_looks_like_tags_gets_a_hint_but_keeps_its_meaning(tmp_path, pictures, write_csv, capsys):
    csv = write_csv(tmp_path / "t.csv", "Id,Target\nimgs/a.png,16 0\nimgs/b.png,0\nimgs/c.png,16\n")
    names, samples = load_csv(csv)
    assert names == ["0", "16", "16 0"] and not samples.multi_label
    assert "1 'Target' cells hold several labels that are classes on their own (e.g. '16 0')" in capsys.readouterr().err
    load_csv(write_csv(tmp_path / "u.csv", "image,label\nimgs/a.png,sea lion\nimgs/b.png,seal\n"))
    assert capsys.readouterr().err == ""
