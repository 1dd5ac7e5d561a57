"""Model names read from files are data: they resolve to visionfit's, torchvision's or timm's
builders, never to an import of code the file names, unless the user trusts that file."""
from ..errors import ModelError


def check_architecture(name: str, where: str, trust_code: bool) -> None:
    """Refuse a `package.module:Class` architecture read from `where` unless trust_code."""
    if not isinstance(name, str) or not name:
        raise ModelError(f"{where} names no architecture; it is corrupt or not visionfit's")
    custom = ":" in name and not name.startswith("timm:")
    if custom and not trust_code:
        module = name.partition(":")[0]
        raise ModelError(f"{where} names its architecture '{name}', code outside visionfit; loading it would import "
                         f"and run '{module}'. If you trust this file, pass --trust-code (trust_code=True)")
