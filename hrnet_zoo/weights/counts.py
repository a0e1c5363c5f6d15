"""Parameters and GFLOPs of every manifest record, as data: ``hrnet-zoo list`` and the model cards read them
instead of counting 43 models at run time.

Written by ``python -m hrnet_zoo.stats --write`` (which counts on the meta device, see :mod:`hrnet_zoo.stats`);
``tests/test_models.py`` recounts some of them, and checks that every record has its row, so the table cannot drift.
GFLOPs are the official tables' convention: conv + linear multiply-adds / 2^30, at the record's input size.
"""

# '<arch>.<tag>': (params, GFLOPs at the tag's input_size)
COUNTS: dict[str, tuple[int, float]] = {
    'hrnetv2_w48.cityscapes': (65859379, 696.17578125),
    'hrnetv2_w18_small_v1.cityscapes': (1540819, 31.09765625),
    'hrnetv2_w18_small_v2.cityscapes': (3939579, 71.57855224609375),
    'hrnetv2_w48.lip': (65860100, 75.98179006576538),
    'hrnetv2_w48.pascal_context': (65888219, 76.87039375305176),
    'hrnetv2_w48.ade20k': (65953830, 92.7324868440628),
    'hrnetv2_w48.cocostuff': (65968971, 92.97046583890915),
    'hrnetv1_w32.coco_256x192': (28536113, 7.119964599609375),
    'hrnetv1_w32.coco_384x288': (28536113, 16.019920349121094),
    'hrnetv1_w48.coco_256x192': (63595745, 14.614151000976562),
    'hrnetv1_w48.coco_384x288': (63595745, 32.881839752197266),
    'hrnetv1_w32.mpii_256x256': (28536080, 9.4931640625),
    'hrnetv2p_w18.coco': (12582036, 118.34883481264114),
    'hrnetv2p_w32.coco': (32379072, 213.34997653961182),
    'hrnetv2p_w40.coco': (48625472, 289.9246120452881),
    'hrnetv2p_w48.coco': (68460096, 382.7088975906372),
    'hrnetv1_w18_small_v1.in1k': (1284961, 0.5425825119018555),
    'hrnetv1_w18_small_v2.in1k': (3616675, 1.4593697041273117),
    'hrnetv1_w18.in1k': (9318215, 3.0312784910202026),
    'hrnetv1_w30.in1k': (25135883, 6.522608399391174),
    'hrnetv1_w32.in1k': (28536113, 7.26829719543457),
    'hrnetv1_w40.in1k': (44319753, 10.719053745269775),
    'hrnetv1_w44.in1k': (53521205, 12.72523283958435),
    'hrnetv1_w48.in1k': (63595745, 14.918612480163574),
    'hrnetv1_w64.in1k': (112624785, 25.564136505126953),
    'hrnetv2_w18_small_v1.in1k': (1540819, 0.7440357208251953),
    'hrnetv2_w18_small_v2.in1k': (3939579, 1.7125727832317352),
    'hrnetv2_w18.in1k': (9641119, 3.284481570124626),
    'hrnetv2_w30.in1k': (26024695, 7.210295721888542),
    'hrnetv2_w32.in1k': (29546515, 8.049062728881836),
    'hrnetv2_w40.in1k': (45894435, 11.931172609329224),
    'hrnetv2_w44.in1k': (55424779, 14.188452661037445),
    'hrnetv2_w48.in1k': (65859379, 16.65654945373535),
    'hrnetv2_w64.in1k': (116640339, 28.637104034423828),
    'hrnetv2p_w18_small_v1.in1k': (4490016, 3.0347795486450195),
    'hrnetv2p_w18_small_v2.in1k': (6880496, 3.9793966710567474),
    'hrnetv2p_w18.in1k': (12582036, 5.551305457949638),
    'hrnetv2p_w30.in1k': (28878132, 9.223200246691704),
    'hrnetv2p_w32.in1k': (32379072, 10.00124740600586),
    'hrnetv2p_w40.in1k': (48625472, 13.5879065990448),
    'hrnetv2p_w44.in1k': (58094256, 15.665918529033661),
    'hrnetv2p_w48.in1k': (68460096, 17.93371868133545),
    'hrnetv2p_w64.in1k': (118894016, 28.902801513671875),
}
