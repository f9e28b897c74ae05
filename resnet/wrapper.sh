# Shared by extract.sh and predict.sh (sourced, not run): v1-style defaults for a job, with
# the user's extra flags passed through after them so they win. With no --model given and
# no downloaded model for the chosen depth, a seeded demo model is written and used, loudly.
# Needs: HERE (the project folder), JOB, the default flags in DEFAULTS (an array), and
# optionally DEMO_OUTPUT, the demo's own output folder: with the demo model and no
# --output_dir from the user, results go there and replace the previous demo run's. A folder
# the user names is never overwritten: the usual --resume/--overwrite refusal applies.

PY=${PYTHON:-python3}
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"

layer_num=50
model_given=no
output_given=no
prev=
for arg in "$@"; do
  [ "$prev" = --layer_num ] && layer_num=$arg
  case "$arg" in
    --layer_num=*) layer_num=${arg#--layer_num=} ;;
    --model|--model=*) model_given=yes ;;
    --output_dir|--output_dir=*) output_given=yes ;;
  esac
  prev=$arg
done

if [ "$model_given" = no ]; then
  model="$HERE/model/resnet_$layer_num"
  mean="$HERE/model/mean_meta_224/mean.meta"
  DEFAULTS+=(--layer_num="$layer_num")  # picks the default model folder, so say its depth
  if [ -d "$model" ]; then
    DEFAULTS+=(--model="$model")
    [ -f "$mean" ] && DEFAULTS+=(--mean="$mean")
  else
    model="$HERE/model/demo_resnet_$layer_num"
    cat >&2 <<MSG
=====================================================================================
 No downloaded model in $HERE/model/resnet_$layer_num.
 Using a DEMO model with seeded RANDOM weights: features and labels are MEANINGLESS.
 It only shows the pipeline working. For real results get the v1 models:
     (cd "$HERE/model" && ./get_model.sh $layer_num)
=====================================================================================
MSG
    "$PY" -m resnet --job=demo_model --layer_num="$layer_num" --model="$model" || exit $?
    DEFAULTS+=(--model="$model")
    if [ -n "${DEMO_OUTPUT:-}" ] && [ "$output_given" = no ]; then
      DEFAULTS+=(--output_dir="$DEMO_OUTPUT" --overwrite)
      echo "Demo output goes to $DEMO_OUTPUT/ (replaced on each demo run)." >&2
    fi
  fi
fi

exec "$PY" -m resnet --job="$JOB" "${DEFAULTS[@]}" "$@"
