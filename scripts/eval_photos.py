"""A second evaluation set: real photos from packages, with queries written by hand.

None of these photos comes with a caption, so the queries below were written from what is
visibly in each photo (looking at the photos only), before semfs had captioned any of
them, and were not changed after seeing results. Relevance is judged over the whole set:
"fruit" lists every photo with fruit in it. A few queries have no relevant photo at all
("snow on mountains"): they count only towards the relevance cut, where a good cut
lists nothing for them.

Sources: scikit-image's bundled photos (pip: scikit-image), OpenCV's sample photos
(apt: opencv-doc) and MATE's nature backgrounds (apt: mate-backgrounds). Drawings,
renders, logos and calibration targets are left out.
"""

from __future__ import annotations

from pathlib import Path

OPENCV = Path("/usr/share/doc/opencv-doc/examples")
MATE = Path("/usr/share/backgrounds/mate/nature")

SKIMAGE_PHOTOS = (
    "astronaut.png", "camera.png", "chelsea.png", "clock_motion.png", "coffee.png",
    "coins.png", "grass.png", "gravel.png", "brick.png", "hubble_deep_field.jpg", "moon.png",
    "motorcycle_left.png", "page.png", "retina.jpg", "rocket.jpg", "ihc.png", "text.png",
)  # fmt: skip
OPENCV_PHOTOS = (
    "data/apple.jpg", "data/baboon.jpg", "data/butterfly.jpg", "data/fruits.jpg",
    "data/home.jpg", "data/messi5.jpg", "data/orange.jpg", "data/building.jpg",
    "data/aero1.jpg", "data/leuvenA.jpg", "data/basketball1.png", "data/board.jpg",
    "data/starry_night.jpg", "data/squirrel_cls.jpg", "data/smarties.png", "data/graf1.png",
    "data/box_in_scene.png", "data/licenseplate_motion.jpg", "data/text_defocus.jpg",
    "data/stuff.jpg", "data/chicky_512.png", "data/rubberwhale1.png", "data/aloeL.jpg",
    "data/ela_original.jpg", "alphamat/input_images/plant.jpg",
)  # fmt: skip
MATE_PHOTOS = (
    "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg", "GreenMeadow.jpg",
    "LadyBird.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg",
    "YellowFlower.jpg",
)  # fmt: skip

# query -> the photos (file stems) it should find.
QUERIES: dict[str, tuple[str, ...]] = {
    # scikit-image
    "an astronaut in an orange spacesuit": ("astronaut",),
    "a woman smiling in front of an American flag": ("astronaut",),
    "a man with a camera on a tripod": ("camera",),
    "a black and white photo of a photographer": ("camera",),
    "a cat's face": ("chelsea",),
    "a tabby cat": ("chelsea",),
    "a cup of coffee": ("coffee",),
    "an espresso on a saucer": ("coffee",),
    "old coins": ("coins",),
    "grass": ("grass", "GreenMeadow", "Dune"),
    "small stones": ("gravel",),
    "a brick wall": ("brick",),
    "galaxies in deep space": ("hubble_deep_field",),
    "the surface of the moon": ("moon",),
    "a red motorcycle in a garage": ("motorcycle_left",),
    "a page of printed text": ("page", "text_defocus"),
    "the retina of an eye": ("retina",),
    "a rocket on the launch pad at night": ("rocket",),
    "cells under a microscope": ("ihc",),
    "handwritten equations": ("text",),
    "a blurred clock": ("clock_motion",),
    # OpenCV
    "a red apple": ("apple",),
    "a monkey with a colourful face": ("baboon",),
    "a butterfly on a leaf": ("butterfly",),
    "sliced citrus fruit": ("fruits",),
    "fruit": ("apple", "fruits", "orange"),
    "an orange": ("orange", "fruits"),
    "a yellow palace with towers under a blue sky": ("home",),
    "a footballer kicking a ball": ("messi5",),
    "a modern office building": ("building",),
    "an aerial view of a city": ("aero1",),
    "an old street with brick houses": ("leuvenA",),
    "two people in a room": ("basketball1",),
    "an electronic circuit board": ("board",),
    "a painting of a starry night sky": ("starry_night",),
    "a squirrel in a tree": ("squirrel_cls",),
    "colourful sweets": ("smarties",),
    "graffiti": ("graf1",),
    "a pile of boxes": ("box_in_scene",),
    "the back of a car": ("licenseplate_motion",),
    "a pen and a lighter on a table": ("stuff",),
    "a small dog with its tongue out": ("chicky_512",),
    "toys": ("rubberwhale1",),
    "an aloe plant in a pot": ("aloeL",),
    "a potted plant": ("aloeL", "plant"),
    "a black notebook": ("ela_original",),
    # MATE backgrounds
    "a drop of water splashing": ("Aqua",),
    "a green leaf close up": ("Blinds", "RainDrops"),
    "grass on a sand dune by the sea": ("Dune",),
    "an orange flower": ("FreshFlower", "Garden"),
    "a green meadow": ("GreenMeadow",),
    "a ladybird": ("LadyBird",),
    "small blue flowers": ("LadyBird",),
    "raindrops on leaves": ("RainDrops",),
    "a dark stormy sky": ("Storm",),
    "dandelion seeds": ("TwoWings",),
    "wooden planks": ("Wood",),
    "a yellow flower": ("YellowFlower",),
    # across the sources
    "flowers": ("FreshFlower", "Garden", "YellowFlower", "LadyBird", "TwoWings"),
    "an insect": ("LadyBird", "butterfly"),
    "animals": ("chelsea", "baboon", "squirrel_cls", "chicky_512", "butterfly", "LadyBird"),
    "food": ("coffee", "apple", "fruits", "orange", "smarties"),
    "buildings": ("home", "building", "leuvenA", "aero1"),
    "people": ("astronaut", "camera", "messi5", "basketball1"),
    "the sea": ("Dune", "Storm"),
    # nothing in the set: a good relevance cut lists nothing
    "snow on mountains": (),
    "a birthday party": (),
    "a bicycle": (),
    "a sailing boat": (),
    "a wedding dress": (),
}


def photo_sources() -> list[Path]:
    """Every photo of the set that is installed (a missing source is skipped)."""
    import skimage.data

    skimage_dir = Path(skimage.data.__file__).parent
    paths = [skimage_dir / name for name in SKIMAGE_PHOTOS]
    paths += [OPENCV / name for name in OPENCV_PHOTOS]
    paths += [MATE / name for name in MATE_PHOTOS]
    return [path for path in paths if path.is_file()]
