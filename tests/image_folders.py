"""Tiny image folders for command-line tests: two classes of 16x16 grayscale PNGs, one
bright and one dark, so that a whole ``train`` runs in a fraction of a second."""
import numpy as np
from PIL import Image


def write_image_folder(root, train=8, val=4, test=4):
    """``root/{train,val,test}/{a,b}/*.png`` with that many images a class; returns root."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val), ("test", test)):
        for c, name in enumerate(("a", "b")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 100, (16, 16)) + 120 * c
                Image.fromarray(pixels.astype(np.uint8), "L").save(root / split / name / f"{i}.png")
    return root
