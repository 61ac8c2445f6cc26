#!/usr/bin/env bash
# Single-node Slurm (Debian 12, slurm-wlm 22.05) for CI, run as root, no systemd.
# usage: bash scripts/slurm_ci.sh up [--acct] | down   (as tested in shared/reference/infra.md §1)
#   --acct: also slurmdbd + MariaDB so that `sacct` (and submitit's job.state) work.
set -euo pipefail
CMD=${1:-up}; ACCT=0; [[ "${2:-}" == "--acct" ]] && ACCT=1
LOG=/var/log/slurm

up() {
  export DEBIAN_FRONTEND=noninteractive
  PKGS="slurmctld slurmd slurm-client munge"; ((ACCT)) && PKGS="$PKGS slurmdbd mariadb-server"
  if ! dpkg -s $PKGS >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $PKGS >/dev/null   # postinst "policy-rc.d denied" msgs are harmless
  fi
  # --- munge (key is created by the package's postinst; make one if missing)
  [[ -s /etc/munge/munge.key ]] || mungekey --create --force
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
  for i in $(seq 50); do munge -n | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  # --- dirs
  install -d -o slurm -g slurm -m 755 /var/spool/slurmctld $LOG
  install -d -m 755 /var/spool/slurmd
  # --- slurm.conf from this machine's real hostname / hardware
  HOST=$(hostname -s)
  HW=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //' -e 's/RealMemory=[0-9]*//')
  MEM=$(( $(slurmd -C | head -1 | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') * 90 / 100 ))
  if ((ACCT)); then ACC="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"; else ACC="AccountingStorageType=accounting_storage/none"; fi
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
$ACC
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
KillWait=10
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST NodeAddr=127.0.0.1 $HW RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  if ((ACCT)); then
    install -d -o mysql -g mysql /run/mysqld
    if ! mysqladmin ping >/dev/null 2>&1; then
      ( /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 >$LOG/mariadb.log 2>&1 & )
      for i in $(seq 100); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.2; done
    fi
    mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
      CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
    cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=$LOG/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
CONF
    chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf
    pgrep -x slurmdbd >/dev/null || slurmdbd
    for i in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  # wait (bounded, 60 s) for the node to be usable; it can come up DRAIN/DOWN (e.g. Low RealMemory) -> resume it
  local ok=0
  for i in $(seq 300); do
    ST=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    if grep -qE '^(idle|mixed|allocated)[*~#]?$' <<<"$ST"; then ok=1; break; fi
    if grep -qE 'drain|down' <<<"$ST"; then scontrol update NodeName=$HOST State=RESUME 2>/dev/null || true; fi
    sleep 0.2
  done
  sinfo || true
  if ((!ok)); then echo "slurm_ci.sh up: node $HOST not idle after 60 s (state: ${ST:-none})" >&2; return 1; fi
}

stop_pidfile() { local f=$1; [[ -f $f ]] || return 0; local p; p=$(cat "$f"); kill "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done; rm -f "$f"; }

down() {
  scancel --user=root 2>/dev/null || true
  # wait (bounded, 60 s) until the controller has no jobs left, so no job step outlives the daemons
  if pgrep -x slurmctld >/dev/null; then
    for i in $(seq 300); do [[ -z "$(squeue -h 2>/dev/null)" ]] && break; sleep 0.2; done
    [[ -z "$(squeue -h 2>/dev/null)" ]] || echo "slurm_ci.sh down: jobs still listed after 60 s: $(squeue -h)" >&2
  fi
  stop_pidfile /run/slurmd.pid
  stop_pidfile /run/slurmctld.pid
  stop_pidfile /run/slurmdbd.pid
  mysqladmin shutdown 2>/dev/null || true
  stop_pidfile /run/munge/munged.pid
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*        # forget job state (fresh job ids next time)
}
case "$CMD" in up) up;; down) down;; *) echo "usage: $0 up [--acct] | down"; exit 2;; esac
