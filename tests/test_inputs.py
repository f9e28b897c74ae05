"""--data: v1 image lists, directories and single images."""
import os

import pytest

from resnet.errors import ResnetError
from resnet.inputs.lists import collect, read_list


def test_list_comments_labels_relative_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    lst = tmp_path / "sub" / "test.list"
    lst.write_text("# header\n\ncat.jpg 282\n  dog.jpg\t156  \nmy photo.jpg\n/abs/x.png -1\n")
    items = read_list(str(lst))
    assert [i.key for i in items] == ["cat.jpg", "dog.jpg", "my photo.jpg", "/abs/x.png"]
    assert [i.label for i in items] == [282, 156, None, -1]
    assert items[0].path == os.path.join(str(tmp_path / "sub"), "cat.jpg")
    assert items[3].path == "/abs/x.png"


def test_directory_and_single_image(tmp_path):
    for name in ("b.jpg", "a.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [i.key for i in collect(str(tmp_path))] == [
        str(tmp_path / "a.PNG"), str(tmp_path / "b.jpg")]
    assert [i.key for i in collect(str(tmp_path / "b.jpg"))] == [str(tmp_path / "b.jpg")]


def test_empty_and_missing(tmp_path):
    (tmp_path / "empty.list").write_text("# nothing\n\n")
    with pytest.raises(ResnetError, match="empty.list: image list is empty"):
        collect(str(tmp_path / "empty.list"))
    with pytest.raises(ResnetError, match="nope.list: input list or image not found"):
        collect(str(tmp_path / "nope.list"))
    (tmp_path / "d").mkdir()
    with pytest.raises(ResnetError, match="directory holds no image files"):
        collect(str(tmp_path / "d"))
