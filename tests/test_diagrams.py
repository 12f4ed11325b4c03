"""The committed figures are what `python -m d2l_ext diagrams` draws (issue 4)."""
from pathlib import Path

from d2l_ext.diagrams import draw_all

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_assets_are_regenerated_byte_for_byte(tmp_path):
    drawn = draw_all(tmp_path)
    assert [p.name for p in drawn] == ["resnext_block.png", "resnext_stage.png",
                                       "resnext18_network.png"]
    for path in drawn:
        assert path.read_bytes() == (ASSETS / path.name).read_bytes(), \
            f"assets/{path.name} is stale: run python -m d2l_ext diagrams"
