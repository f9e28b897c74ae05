"""paddle.vision and PaddleClas `.pdparams` (a pickle of numpy arrays, read restricted)."""
from resnet.importers import IMPORTERS


@IMPORTERS.register("paddle")
class PaddleImporter:
    suffixes = (".pdparams",)

    @staticmethod
    def looks_like(head: bytes) -> bool:
        return head[:1] == b"\x80"  # a pickle's PROTO opcode

    @staticmethod
    def read(path: str) -> dict:
        from resnet.modelio import safepickle

        return safepickle.load(path)
