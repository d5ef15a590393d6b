"""benchmarks/step_profile: HLO instructions read by category and trace events summed per step."""

import pytest

from benchmarks import step_profile

HLO = """HloModule jit_step, entry_computation_layout={(f32[8,4]{1,0})->f32[8,2]{1,0}}

%fused_computation (param_0: f32[8,2]) -> f32[8,2] {
  %param_0 = f32[8,2]{1,0} parameter(0)
  ROOT %tanh.1 = f32[8,2]{1,0} tanh(%param_0)
}

ENTRY %main (p: f32[8,4]) -> f32[8,2] {
  %p = f32[8,4]{1,0} parameter(0), metadata={op_name="p"}
  %concatenate.3 = f32[8,8]{1,0} concatenate(%p, %p), dimensions={1}
  %ynn_fusion.2 = f32[8,2]{1,0} fusion(%concatenate.3), kind=kCustom, calls=%fused_computation.9
  %custom-call.1 = f32[8,2]{1,0} custom-call(%ynn_fusion.2), custom_call_target="__onednn$matmul"
  ROOT %tanh_fusion = f32[8,2]{1,0} fusion(%custom-call.1), kind=kLoop, calls=%fused_computation
}
"""


def test_instructions_are_read_with_their_category():
    instructions = step_profile.hlo_instructions(HLO)
    categories = {name: category for name, (category, _) in instructions.items()}
    assert categories["concatenate.3"] == "concatenate"
    assert categories["ynn_fusion.2"] == "fusion:kCustom"
    assert categories["custom-call.1"] == "custom-call:__onednn$matmul"
    assert categories["tanh_fusion"] == "fusion:kLoop"  # the ROOT line
    assert categories["tanh.1"] == "tanh"
    assert instructions["concatenate.3"][1].startswith("%concatenate.3 = f32[8,8]")
    assert "HloModule" not in " ".join(categories)


def test_events_are_summed_per_instruction_and_category_per_step():
    instructions = step_profile.hlo_instructions(HLO)
    events = [
        ("ynn_fusion.2", 3_000_000),
        ("ynn_fusion.2", 1_000_000),  # a second thread's share of the same instruction
        ("concatenate.3", 2_000_000),
        ("tanh_fusion", 500_000),
        ("ThunkExecutor::Execute", 9_000_000),  # not an instruction: left out
        ("$script.py:10 run", 9_000_000),
    ]
    result = step_profile.aggregate(events, instructions, steps=2)
    assert result["op_ms_per_step"] == pytest.approx(3.25)
    assert result["by_instruction"] == pytest.approx({"ynn_fusion.2": 2.0, "concatenate.3": 1.0, "tanh_fusion": 0.25})
    assert list(result["by_category"]) == ["fusion:kCustom", "concatenate", "fusion:kLoop"]  # largest first
    assert result["by_category"]["fusion:kCustom"] == pytest.approx(2.0)


def test_refuses_to_profile_jax_started_without_the_trace_flag(monkeypatch):
    import jax  # noqa: F401  (already started, as in any pytest session)

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    with pytest.raises(SystemExit, match="before XLA_FLAGS"):
        step_profile.main(["gan"])
