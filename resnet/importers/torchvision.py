"""torchvision (and timm) `.pth` state dicts, read without torch (importers/torch_pth.py)."""
from resnet.importers import IMPORTERS


@IMPORTERS.register("torchvision")
class TorchvisionImporter:
    styles = ("torchvision",)
    suffixes = (".pth", ".pt")

    @staticmethod
    def looks_like(head: bytes) -> bool:
        return head.startswith(b"PK\x03\x04") or head[2:4] == b"\x8a\x0a"  # zip / legacy magic

    @staticmethod
    def read(path: str) -> dict:
        from resnet.importers.torch_pth import read_torch

        return read_torch(path)
