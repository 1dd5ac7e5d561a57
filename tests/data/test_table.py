"""CSV sources: column choice, path resolution, labels, and the errors a user meets."""
import numpy as np
import pytest

from visionfit.data.samples import UNLABELLED
from visionfit.data.table import EMPTY_LABEL, MISSING_FILE, load_csv
from visionfit.errors import DataError


def test_string_labels_sorted_and_paths_relative_to_csv(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "train.csv", "image,label\nimgs/a.png,dog\nimgs/b.png,cat\nimgs/c.png,dog\n")
    names, samples = load_csv(csv)
    assert names == ["cat", "dog"]
    np.testing.assert_array_equal(samples.labels, [1, 0, 1])
    assert samples.paths == [pictures / "a.png", pictures / "b.png", pictures / "c.png"]


def test_bare_ids_under_images_root_get_an_extension(tmp_path, pictures, write_csv):
    # Kaggle style: an id column, no extension, images in another folder; a BOM from Excel.
    csv = write_csv(tmp_path / "sheets" / "train.csv", "\ufeffId,Width,Target\nd,1,x\ne,1,y\n")
    names, samples = load_csv(csv, images=pictures)
    assert names == ["x", "y"]
    assert samples.paths == [pictures / "d.png", pictures / "e.png"]


def test_numeric_labels_sort_numerically_and_merge_spellings(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "file,class\nimgs/a.png,10\nimgs/b.png,2\nimgs/c.png,2.0\nimgs/d.png,1\n")
    names, samples = load_csv(csv)
    assert names == ["1", "2", "10"]
    np.testing.assert_array_equal(samples.labels, [2, 1, 1, 0])


@pytest.mark.parametrize(
    "header, row, columns",
    [
        ("label,Filename", "cat,imgs/a.png", {}),  # known names win over position
        ("name,kind", "imgs/a.png,cat", {"label_column": "KIND"}),  # no known label name: the flag names it
        ("weight,pic,kind", "3,imgs/a.png,cat", {"label_column": "kind", "image_column": "pic"}),
    ],
)
def test_columns_found_by_name_or_flag(tmp_path, pictures, write_csv, header, row, columns):
    csv = write_csv(tmp_path / "t.csv", f"{header}\n{row}\n")
    names, samples = load_csv(csv, **columns)
    assert names == ["cat"] and samples.paths == [pictures / "a.png"]


def test_an_unnamed_label_column_is_not_guessed(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,weight\nimgs/a.png,0.5\nimgs/b.png,2\n")
    with pytest.raises(DataError, match=r"no label column .* other columns \(weight\).*--label-column NAME"):
        load_csv(csv)


def test_a_label_column_the_header_lacks_lists_the_columns(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,label\nimgs/a.png,x\n")
    with pytest.raises(DataError, match=r"--label-column kind: .* no such column \(columns: image, label\)"):
        load_csv(csv, label_column="kind")


def test_semicolon_separated_file_is_read(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image;label\nimgs/a.png;x\nimgs/b.png;y\n")
    names, samples = load_csv(csv)
    assert names == ["x", "y"] and samples.paths == [pictures / "a.png", pictures / "b.png"]


def test_csv_without_label_column_is_unlabelled(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "test.csv", "image\nimgs/a.png\nimgs/b.png\n")
    names, samples = load_csv(csv)
    assert names == [] and (samples.labels == UNLABELLED).all()


def test_missing_files_listed_by_spreadsheet_row_with_total(tmp_path, pictures, write_csv):
    rows = ["imgs/a.png,x"] + [f"imgs/gone{i}.png,x" for i in range(7)]
    csv = write_csv(tmp_path / "t.csv", "image,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as error:
        load_csv(csv)
    message = str(error.value)
    # The header is row 1 and a.png (row 2) exists, so the first missing file is on row 3.
    assert "7 image file(s) not found" in message
    assert "row 3: imgs/gone0.png" in message and "row 7: imgs/gone4.png" in message
    assert "gone5" not in message and "--images" in message


def test_empty_label_cells_are_counted_and_named_by_row(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "image,label\nimgs/a.png,x\n\nimgs/b.png,\nimgs/c.png,\n")
    with pytest.raises(DataError, match=r"2 row\(s\) have an empty 'label' cell, e.g. row 4, row 5"):
        load_csv(csv)


def test_bad_rows_can_be_collected_instead_of_refused(tmp_path, pictures, write_csv):
    rows = ["imgs/a.png,x", "imgs/gone.png,x", "imgs/b.png,", "imgs/c.png,y"]
    rows += [f"imgs/gone{i}.png,y" for i in range(6)]
    csv = write_csv(tmp_path / "t.csv", "image,label\n" + "\n".join(rows) + "\n")
    bad_rows = []
    names, samples = load_csv(csv, bad_rows=bad_rows)
    assert names == ["x", "y"] and samples.paths == [pictures / "a.png", pictures / "c.png"]
    missing = [text for kind, text in bad_rows if kind == MISSING_FILE]
    assert missing[0] == "t.csv row 3: imgs/gone.png" and len(missing) == 7  # every one, not the first five
    assert [text for kind, text in bad_rows if kind == EMPTY_LABEL] == ["t.csv row 4"]


def test_missing_header_is_explained(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "t.csv", "imgs/a.png,x\nimgs/b.png,y\n")
    with pytest.raises(DataError, match="looks like data, not a header"):
        load_csv(csv)


def test_validation_labels_map_onto_training_classes(tmp_path, pictures, write_csv):
    csv = write_csv(tmp_path / "val.csv", "image,label\nimgs/a.png,7\nimgs/b.png,3\n")
    np.testing.assert_array_equal(load_csv(csv, class_names=["3", "5", "7"])[1].labels, [2, 0])
    with pytest.raises(DataError, match="row 3: label '3' is not one of the training classes"):
        load_csv(csv, class_names=["7", "9"])
