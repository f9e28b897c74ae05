"""torchvision (and timm) `.pth` state dicts, read without torch (importers/torch_pth.py)."""
from resnet.importers import IMPORTERS


@IMPORTERS.register("torchvision")
class TorchvisionImporter:
    suffixes = (".pth", ".pt")

    @staticmethod
    def looks_like(head: bytes) -> bool:
        # torch.save's zip, whose members sit under "<archive>/" (the first member's name
        # length is at byte 26, the name at 30), or the legacy pickle magic
        if head.startswith(b"PK\x03\x04"):
            return b"/" in head[30:30 + int.from_bytes(head[26:28], "little")]
        return head[2:4] == b"\x8a\x0a"

    @staticmethod
    def read(path: str) -> dict:
        from resnet.importers.torch_pth import read_torch

        return read_torch(path)
