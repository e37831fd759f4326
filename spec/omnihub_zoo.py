# ruff: noqa: E501 -- data tables: one model per row, long documentation strings
"""DL4J's omnihub zoo (github.com/KonduitAI/omnihub-zoo): every SameDiff and DL4J file.

The three models DL4J's Kotlin spec declares keep their DL4J names (``age_googlenet``,
``resnet18``, ``vgg19_no_top``); the other files are named after their file stems. sha256 and
size come from the zoo's Git LFS pointers or blobs, and are None where the snapshot lacks
the blob (the runtime then trusts the first download and pins it).
"""

from __future__ import annotations

from omnihub_compiler.dsl import (
    DEFAULT_OMNIHUB_URL,
    ModelType,
    NamespaceBuilder,
    framework_namespace,
)

# (name, documentation, file, sha256, size)
SAMEDIFF_MODELS: list[tuple[str, str, str, str | None, int | None]] = [
    (
        "age_googlenet",
        "An age classifier based on GoogLeNet (Levi and Hassner, 2015), converted to SameDiff.\n\nPredicts one of 8 age ranges from a 224x224 face crop.",
        "age_googlenet.fb",
        None,
        None,
    ),
    (
        "bvlcalexnet-12",
        'bvlcalexnet-12 from the omnihub zoo (samediff/bvlcalexnet-12.fb), added 2022-01-11: "Create bvlcalexnet-12.fb".',
        "bvlcalexnet-12.fb",
        "120987f064caf13c6176621b45972d392953eda01031ad45b85b41d1f1385372",
        602496,
    ),
    (
        "caffenet-12",
        'caffenet-12 from the omnihub zoo (samediff/caffenet-12.fb), added 2022-01-11: "Create caffenet-12.fb".',
        "caffenet-12.fb",
        "120987f064caf13c6176621b45972d392953eda01031ad45b85b41d1f1385372",
        602496,
    ),
    (
        "efficientnet-lite4-11",
        'efficientnet-lite4-11 from the omnihub zoo (samediff/efficientnet-lite4-11.fb), added 2022-01-11: "Create efficientnet-lite4-11.fb".',
        "efficientnet-lite4-11.fb",
        None,
        None,
    ),
    (
        "electra-small-discriminator",
        'electra-small-discriminator from the omnihub zoo (samediff/electra-small-discriminator.fb), added 2022-01-11: "Create electra-small-discriminator.fb".',
        "electra-small-discriminator.fb",
        None,
        None,
    ),
    (
        "emotion-ferplus-2",
        'emotion-ferplus-2 from the omnihub zoo (samediff/emotion-ferplus-2.fb), added 2022-01-11: "Create emotion-ferplus-2.fb".',
        "emotion-ferplus-2.fb",
        None,
        None,
    ),
    (
        "emotion-ferplus-7",
        'emotion-ferplus-7 from the omnihub zoo (samediff/emotion-ferplus-7.fb), added 2022-01-11: "Create emotion-ferplus-7.fb".',
        "emotion-ferplus-7.fb",
        None,
        None,
    ),
    (
        "emotion-ferplus-8",
        'emotion-ferplus-8 from the omnihub zoo (samediff/emotion-ferplus-8.fb), added 2022-01-11: "Create emotion-ferplus-8.fb".',
        "emotion-ferplus-8.fb",
        None,
        None,
    ),
    (
        "gender_googlenet",
        'gender_googlenet from the omnihub zoo (samediff/gender_googlenet.fb), added 2022-01-11: "Create gender_googlenet.fb".',
        "gender_googlenet.fb",
        None,
        None,
    ),
    (
        "gpt2",
        'gpt2 from the omnihub zoo (samediff/gpt2.fb), added 2022-01-11: "Add other models".',
        "gpt2.fb",
        "a447e8568e4459cecf9c915269e04b063a864e522c66ecdf415654f79b232594",
        498658664,
    ),
    (
        "resnet18",
        "Resnet18 trained on imagenet, converted to SameDiff.\n\nInput: 1x3x224x224 images; output: 1000 ImageNet class scores.",
        "resnet18.fb",
        None,
        None,
    ),
    (
        "version-RFB-320",
        'version-RFB-320 from the omnihub zoo (samediff/version-RFB-320.fb), added 2022-01-11: "Create version-RFB-320.fb".',
        "version-RFB-320.fb",
        "06f04eeca8a2fc703033f903ad8ecc71e4ab1745872c36494dc9abcbd099fff8",
        921984,
    ),
    (
        "version-RFB-640",
        'version-RFB-640 from the omnihub zoo (samediff/version-RFB-640.fb), added 2022-01-11: "Create version-RFB-640.fb".',
        "version-RFB-640.fb",
        "22e3842e0c01739acc1de232b51c3ae833a4ded1145089964df630551baa8522",
        3686784,
    ),
    (
        "vgg19-block4-conv2-unpooling-decoder",
        'vgg19-block4-conv2-unpooling-decoder from the omnihub zoo (samediff/vgg19-block4-conv2-unpooling-decoder.fb), added 2022-01-06: "Add resnet18ag_googlenet,vgg19decoder".',
        "vgg19-block4-conv2-unpooling-decoder.fb",
        None,
        None,
    ),
    (
        "vgg_ilsvrc_16_age_chalearn_iccv2015",
        'vgg_ilsvrc_16_age_chalearn_iccv2015 from the omnihub zoo (samediff/vgg_ilsvrc_16_age_chalearn_iccv2015.fb), added 2022-01-11: "Add other models".',
        "vgg_ilsvrc_16_age_chalearn_iccv2015.fb",
        "2a432095c1c770dde9b101ff07f8c8231b5c41c4f13b25e0f2fff797d555ff0e",
        539384400,
    ),
    (
        "vgg_ilsvrc_16_age_imdb_wiki",
        'vgg_ilsvrc_16_age_imdb_wiki from the omnihub zoo (samediff/vgg_ilsvrc_16_age_imdb_wiki.fb), added 2022-01-11: "Add other models".',
        "vgg_ilsvrc_16_age_imdb_wiki.fb",
        "a6705f04d18a7dcc4dc10adc7cf89f63eb877bda427642c6412bfb4539387d63",
        539384400,
    ),
    (
        "vgg_ilsvrc_16_gender_imdb_wiki",
        'vgg_ilsvrc_16_gender_imdb_wiki from the omnihub zoo (samediff/vgg_ilsvrc_16_gender_imdb_wiki.fb), added 2022-01-11: "Add other models".',
        "vgg_ilsvrc_16_gender_imdb_wiki.fb",
        "d84eee3c40bebec4da49ea1a6493394c27ae0848793946eb1172c5a9ed5cbbca",
        537761960,
    ),
]

DL4J_MODELS: list[tuple[str, str, str, str | None, int | None]] = [
    (
        "vgg19_no_top",
        "VGG19 without its fully connected top layers (Keras imagenet weights), as a DL4J ComputationGraph.\n\nUse it as a feature extractor or for transfer learning.",
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.zip",
        "469cb163b5e488ac204c1eee7e2ce15a8e1a52472a09a574510c7056283d18c8",
        74478849,
    ),
]


@framework_namespace("SameDiffModels", package="samediff")
def samediff(ns: NamespaceBuilder) -> None:
    for name, documentation, file, sha256, size in SAMEDIFF_MODELS:
        ns.samediff_model(
            name,
            documentation=documentation,
            url=f"{DEFAULT_OMNIHUB_URL}/samediff/{file}",
            sha256=sha256,
            size=size,
            tags=("omnihub-zoo",),
        )


@framework_namespace("DL4JModels", package="dl4j")
def dl4j(ns: NamespaceBuilder) -> None:
    for name, documentation, file, sha256, size in DL4J_MODELS:
        ns.dl4j_model(
            name,
            documentation=documentation,
            url=f"{DEFAULT_OMNIHUB_URL}/dl4j/{file}",
            model_type=ModelType.COMP_GRAPH,
            sha256=sha256,
            size=size,
            tags=("omnihub-zoo",),
        )
