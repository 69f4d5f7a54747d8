"""ppgen's shape and trend scores equal SDMetrics 0.32's to 1e-9 on three tables.

The reference numbers come from ``benchmarks/sdmetrics_reference.py`` (SDMetrics in a venv of its
own, pandas < 3): per column KSComplement / TVComplement, per pair CorrelationSimilarity /
ContingencySimilarity (continuous columns binned at the real column's histogram edges), and the
Column Shapes score of SDMetrics' QualityReport. The tables are
:func:`ppgen.testing.synthetic.parity_tables` (no random numbers).
"""

from __future__ import annotations

import math

import pytest

from ppgen.evaluate import quality
from ppgen.testing.synthetic import parity_tables

# fmt: off
SDMETRICS = {'sdmetrics': '0.32.0',
 'penguins': {'columns': {'species': 0.8866279069767442,
                          'island': 0.7906976768861547,
                          'bill_length_mm': 0.7514619883040936,
                          'bill_depth_mm': 0.9415204678362573,
                          'flipper_length_mm': 0.7105263157894737,
                          'body_mass_g': 0.7631578947368421,
                          'sex': 0.9092664092664092,
                          'year': 0.8633720930232558},
              'pairs': {'species|island': 0.7616279069767442,
                        'species|bill_length_mm': 0.5290697674418604,
                        'species|bill_depth_mm': 0.7558139534883721,
                        'species|flipper_length_mm': 0.4999999999999999,
                        'species|body_mass_g': 0.5813953488372093,
                        'species|sex': 0.8430232558139534,
                        'species|year': 0.7674418604651163,
                        'island|bill_length_mm': 0.5668604651162791,
                        'island|bill_depth_mm': 0.747093023255814,
                        'island|flipper_length_mm': 0.5319767441860465,
                        'island|body_mass_g': 0.6308139534883721,
                        'island|sex': 0.7558139534883721,
                        'island|year': 0.7412790697674418,
                        'bill_length_mm|bill_depth_mm': 0.8769525469840258,
                        'bill_length_mm|flipper_length_mm': 0.9580937643191594,
                        'bill_length_mm|body_mass_g': 0.8761736583358244,
                        'bill_length_mm|sex': 0.6424418604651163,
                        'bill_length_mm|year': 0.6831395348837209,
                        'bill_depth_mm|flipper_length_mm': 0.9364510095507073,
                        'bill_depth_mm|body_mass_g': 0.9599181054610197,
                        'bill_depth_mm|sex': 0.6308139534883721,
                        'bill_depth_mm|year': 0.8052325581395349,
                        'flipper_length_mm|body_mass_g': 0.8470604787097296,
                        'flipper_length_mm|sex': 0.6017441860465116,
                        'flipper_length_mm|year': 0.6191860465116279,
                        'body_mass_g|sex': 0.6598837209302325,
                        'body_mass_g|year': 0.7209302325581395,
                        'sex|year': 0.8372093023255813},
              'report_shape': 0.827078844102404},
 'wine': {'columns': {'alcohol': 1.0,
                      'malic_acid': 0.797752808988764,
                      'ash': 0.6741573033707865,
                      'flavanoids': 0.9325842696629214,
                      'proline': 0.9269662921348315,
                      'target': 0.8651685393258427},
          'pairs': {'alcohol|malic_acid': 0.9749829321306038,
                    'alcohol|ash': 0.9364190438981829,
                    'alcohol|flavanoids': 0.803518163818318,
                    'alcohol|proline': 0.7623555176198107,
                    'alcohol|target': 0.6966292134831461,
                    'malic_acid|ash': 0.9637226679565936,
                    'malic_acid|flavanoids': 0.9313186359459799,
                    'malic_acid|proline': 0.9454970464625735,
                    'malic_acid|target': 0.6292134831460674,
                    'ash|flavanoids': 0.9373622116784205,
                    'ash|proline': 0.9394554797055918,
                    'ash|target': 0.6516853932584269,
                    'flavanoids|proline': 0.9629247468804485,
                    'flavanoids|target': 0.7247191011235955,
                    'proline|target': 0.7752808988764045},
          'report_shape': 0.8661048689138576},
 'breast_cancer': {'columns': {'mean radius': 1.0,
                               'mean texture': 0.8717047451669596,
                               'worst area': 0.9068541300527241,
                               'worst smoothness': 0.9420035149384886,
                               'target': 0.8681898066783831},
                   'pairs': {'mean radius|mean texture': 0.8266712513481324,
                             'mean radius|worst area': 0.5344096401322943,
                             'mean radius|worst smoothness': 0.926283888291525,
                             'mean radius|target': 0.6186291739894552,
                             'mean texture|worst area': 0.8163838191243906,
                             'mean texture|worst smoothness': 0.9959156172270657,
                             'mean texture|target': 0.7275922671353252,
                             'worst area|worst smoothness': 0.9064780828007611,
                             'worst area|target': 0.6133567662565905,
                             'worst smoothness|target': 0.7908611599297013},
                   'report_shape': 0.917750439367311}}
# fmt: on

TABLES = parity_tables()


@pytest.mark.parametrize("name", list(TABLES))
def test_column_and_pair_scores_equal_sdmetrics(name):
    real, synthetic = TABLES[name]
    result = quality(real, synthetic)
    expected = SDMETRICS[name]
    columns = dict(zip(result.columns["column"], result.columns["score"], strict=True))
    assert columns.keys() == expected["columns"].keys()
    for column, score in expected["columns"].items():
        assert columns[column] == pytest.approx(score, abs=1e-9), column
    pairs = {
        f"{a}|{b}": s
        for a, b, s in zip(
            result.pairs["column_1"], result.pairs["column_2"], result.pairs["score"], strict=True
        )
    }
    assert pairs.keys() == expected["pairs"].keys()
    for pair, score in expected["pairs"].items():
        assert pairs[pair] == pytest.approx(score, abs=1e-9), pair
    assert result.shape == pytest.approx(expected["report_shape"], abs=1e-9)
    assert result.trend == pytest.approx(
        sum(expected["pairs"].values()) / len(expected["pairs"]), abs=1e-9
    )
    assert result.score == pytest.approx((result.shape + result.trend) / 2, abs=1e-12)
    assert not math.isnan(result.trend)


def test_identical_tables_score_one():
    real, _ = TABLES["penguins"]
    result = quality(real, real.sample(frac=1.0, random_state=0))
    assert result.shape == pytest.approx(1.0, abs=1e-12)
    assert result.trend == pytest.approx(1.0, abs=1e-12)
