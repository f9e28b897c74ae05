"""timm / Hugging Face `.safetensors` (torchvision or paddle.vision key names)."""
from resnet.errors import ResnetError
from resnet.importers import IMPORTERS


@IMPORTERS.register("safetensors")
class SafetensorsImporter:
    suffixes = (".safetensors",)

    @staticmethod
    def looks_like(head: bytes) -> bool:
        return len(head) > 8 and head[8:9] == b"{"  # u64 header length, then the JSON header

    @staticmethod
    def read(path: str) -> dict:
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ResnetError("reading .safetensors needs the safetensors package: "
                              "pip install -e \".[convert]\" (or: pip install safetensors)") \
                from None
        try:
            return load_file(path)
        except Exception as e:  # safetensors raises its own SafetensorError for bad files
            raise ResnetError(f"{path}: not a readable safetensors file ({e})") from None
