import json
import random

import pytest

from tracking.space import (
    LIGHTTRACK_MOBILE,
    MBCONV_CHOICES,
    Architecture,
    ArchitectureError,
    SearchSpace,
    crossover,
    from_genes,
    lighttrack_mobile,
    mutate,
    sample,
    sample_many,
    to_genes,
)


def test_mobile_round_trips_byte_for_byte():
    a = Architecture.from_string(LIGHTTRACK_MOBILE)
    assert a.to_string() == LIGHTTRACK_MOBILE
    assert Architecture.from_json(json.loads(json.dumps(a.to_json()))).to_string() == LIGHTTRACK_MOBILE


def test_mobile_decodes_as_published():
    a = lighttrack_mobile()
    assert [MBCONV_CHOICES[c] for c in a.backbone[0]] == [(7, 4), (7, 6)]
    assert [MBCONV_CHOICES[c] for c in a.backbone[1]] == [(3, 4), (5, 4), (7, 6), (3, 6)]
    assert (a.out_stage, a.out_block) == (3, 2)
    assert a.cls.width_channels() == 256 and a.cls.kernels() == [5, 5, 3, 3, 3, 3, None, None]
    assert a.reg.width_channels() == 192 and a.reg.kernels() == [3, 3, 3, 3, 3, 5, 5, 5]


def test_unused_digits_share_canonical_id():
    a = lighttrack_mobile()
    # change the unused 4th block of the 96-channel stage and a stage-5 digit
    s = LIGHTTRACK_MOBILE
    b = Architecture.from_string(s[:19] + "3" + s[20:21] + "1" + s[22:])
    assert b.to_string() != a.to_string()
    assert b.canonical_id() == a.canonical_id() and b.same_network(a)
    c = Architecture.from_string(s.replace("cls_211", "cls_210"))
    assert c.canonical_id() != a.canonical_id()


@pytest.mark.parametrize("text,msg", [
    ("back_0450+cls_211000022+reg_100000111_ops_32", "malformed LightTrack string"),
    (LIGHTTRACK_MOBILE.replace("cls_211", "cls_221"), "cls layer 1 cannot be skip"),
    (LIGHTTRACK_MOBILE.replace("back_045025", "back_045027"), "backbone stage 1 block 2: choice 7 not in 0..5"),
    (LIGHTTRACK_MOBILE.replace("cls_2", "cls_3"), "cls width 3 not in 0..2"),
    (LIGHTTRACK_MOBILE.replace("reg_100000111", "reg_100000113"), "reg layer 8: choice 3 not in 0..2"),
    (LIGHTTRACK_MOBILE.replace("ops_32", "ops_14"), "output stage 1 not allowed"),
    (LIGHTTRACK_MOBILE.replace("ops_32", "ops_34"), "output block 4 not in 0..3"),
])
def test_validation_messages(text, msg):
    with pytest.raises(ArchitectureError, match=msg):
        Architecture.from_string(text)


def test_output_positions_are_a_setting():
    s = LIGHTTRACK_MOBILE.replace("ops_32", "ops_12")
    with pytest.raises(ArchitectureError):
        Architecture.from_string(s)
    assert Architecture.from_string(s, SearchSpace.code()).out_stage == 1
    assert SearchSpace.code().size() > SearchSpace.paper().size() > 10**18


def test_sampling_covers_every_choice_and_is_seeded():
    archs = sample_many(400, seed=1)
    assert [a.to_string() for a in archs[:5]] == [a.to_string() for a in sample_many(5, seed=1)]
    for a in archs:
        a.validate()
    seen = {(s, b, c) for a in archs for s, st in enumerate(a.backbone) for b, c in enumerate(st)}
    assert len(seen) == (2 + 4 + 4 + 4) * 6
    assert {(a.out_stage, a.out_block) for a in archs} == set(SearchSpace().output_positions)
    for head in ("cls", "reg"):
        assert {getattr(a, head).width for a in archs} == {0, 1, 2}
        assert {getattr(a, head).layers[0] for a in archs} == {0, 1}
        for i in range(1, 8):
            assert {getattr(a, head).layers[i] for a in archs} == {0, 1, 2}


def test_mutation_and_crossover_are_valid_and_seeded():
    rng = random.Random(3)
    a, b = sample(rng), sample(rng)
    assert mutate(a, random.Random(5)) == mutate(a, random.Random(5))
    assert mutate(a, random.Random(5), p=0.0) == a
    for i in range(200):
        m = mutate(a, random.Random(i), p=0.3)
        m.validate()
        c = crossover(a, b, random.Random(i))
        c.validate()
        for s in range(4):  # backbone stages come whole from one parent
            assert c.backbone[s] in (a.backbone[s], b.backbone[s])
        assert (c.out_stage, c.out_block) in ((a.out_stage, a.out_block), (b.out_stage, b.out_block))


def test_genes_round_trip():
    for a in sample_many(50, seed=2):
        assert from_genes(to_genes(a)).to_string() == a.to_string()
