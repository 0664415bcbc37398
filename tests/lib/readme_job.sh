# Sourced by the shell suites that run the original README's example job (compose, packaging).
# Each function takes the API's base URL first and passes any extra arguments to curl (e.g.
# --cacert FILE).

# readme_job_submit BASE ADMIN_TOKEN [CURL_ARG...]: POSTs the original README's submit example,
# verbatim but for the token and the address; prints the job id, or nothing (and the answer on
# stderr) when there is none.
readme_job_submit() {
    local base=$1 token=$2 resp
    shift 2
    resp=$(curl -sS "$@" -X POST "$base/api/v1/submit" \
      -H "Content-Type: application/json" \
      -H "X-Admin-Token: $token" \
      -d '{
        "title": "Data Processing Job",
        "description": "Process large dataset",
        "code": "print(\"Hello World\")",
        "required_cores": 2,
        "required_ram_mb": 4096,
        "priority": 1,
        "command": "python script.py",
        "parameters": {"input": "data.csv"},
        "buyer_id": "default-buyer"
      }')
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["job_id"])' "$resp" 2>/dev/null ||
        echo "submit answered: ${resp:0:300}" >&2
}

# readme_job_field BASE JOB FIELD [CURL_ARG...]: prints one field of GET /api/v1/jobs/JOB.
readme_job_field() {
    local base=$1 job=$2 field=$3
    shift 3
    curl -fsS "$@" "$base/api/v1/jobs/$job" |
        python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print("" if v is None else v)' "$field" 2>/dev/null
}

# readme_job_wait BASE JOB SECONDS [CURL_ARG...]: waits until the job is over or SECONDS pass;
# prints its last status.
readme_job_wait() {
    local base=$1 job=$2 deadline=$((SECONDS + $3)) status=
    shift 3
    while [ -n "$job" ] && [ $SECONDS -lt $deadline ]; do
        status=$(readme_job_field "$base" "$job" status "$@")
        case $status in completed | failed | cancelled) break ;; esac
        sleep 0.5
    done
    echo "$status"
}

# readme_job_stdout BASE JOB ADMIN_TOKEN [CURL_ARG...]: prints the job's stdout (admin only).
readme_job_stdout() {
    local base=$1 job=$2 token=$3
    shift 3
    curl -fsS "$@" -H "X-Admin-Token: $token" "$base/api/v1/jobs/$job/output" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["stdout"], end="")' 2>/dev/null
}
